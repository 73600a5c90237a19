defmodule DevstralElixir.Web.UI.JobView do
  @moduledoc """
  What the jobs pages show of a job, and the fragments the live feeds send:
  the rows of `/jobs`, a job's summary, its log and its loss chart (an
  inline SVG: train loss and eval loss against step, from the progress
  history in `DevstralElixir.Web.UI.JobHistory`).

  The fraction done and the ETA are the CLI's (`DevstralElixir.Jobs.ProgressBar`).
  """

  alias DevstralElixir.Jobs.{Job, ProgressBar}
  alias DevstralElixir.Web.HTML
  alias DevstralElixir.Web.UI.Views

  @log_lines 200

  @doc "The view of one job (a map the templates read)."
  @spec view(Job.t()) :: map()
  def view(%Job{} = job) do
    json = Job.to_json(job)
    progress = json["progress"] || %{}

    %{
      id: job.id,
      type: json["type"],
      state: json["state"],
      attempt: "#{job.attempts}/#{job.max_attempts}",
      percent: round(ProgressBar.fraction(json, progress) * 100),
      where: where(progress),
      eta: eta(json["state"], progress),
      error: job.error,
      args: :jiffy.encode(json["args"], [:use_nil, :pretty]),
      cancellable?: job.state in [:queued, :running]
    }
  end

  @doc "The table rows of `/jobs`."
  @spec rows([Job.t()], boolean(), String.t()) :: String.t()
  def rows(jobs, admin?, csrf),
    do: Views.job_rows(%{jobs: Enum.map(jobs, &view/1), admin?: admin?, csrf: csrf})

  @doc "A job's summary block."
  @spec summary(Job.t(), boolean(), String.t()) :: String.t()
  def summary(job, admin?, csrf),
    do: Views.job_summary(%{job: view(job), admin?: admin?, csrf: csrf})

  @doc "The log lines (`<li>`s) of a job's recorded progress, the last #{@log_lines}."
  @spec log([map()]) :: iodata()
  def log([]), do: ~s(<li class="muted">No events yet.</li>)

  def log(events) do
    for event <- Enum.take(events, -@log_lines) do
      ["<li>", HTML.escape(log_line(event)), "</li>"]
    end
  end

  defp log_line(event) do
    metrics =
      for {k, v} <- Enum.sort(event["metrics"] || %{}),
          is_number(v),
          do: "#{k}=#{:erlang.float_to_binary(v / 1, decimals: 4)}"

    steps =
      if is_integer(event["total_steps"]) and event["total_steps"] > 0,
        do: "#{event["step"]}/#{event["total_steps"]}"

    [event["kind"], event["phase"], steps, event["message"] | metrics]
    |> Enum.reject(&(&1 in [nil, ""]))
    |> Enum.join(" ")
  end

  @width 600
  @height 220
  @pad 36

  @doc """
  The loss chart: an SVG with a polyline for train loss (`metrics.loss`) and
  one for eval loss (`metrics.eval_loss`) against step. Steps restart at
  each curriculum stage, so the x axis counts on across stages.
  """
  @spec chart([map()]) :: iodata()
  def chart(events) do
    {train, eval} = points(events)
    all = train ++ eval

    body =
      if all == [] do
        [
          ~s(<text x="#{div(@width, 2)}" y="#{div(@height, 2)}" text-anchor="middle" class="muted">no loss reported yet</text>)
        ]
      else
        {xs, ys} = Enum.unzip(all)
        scale = {Enum.min(xs), max(Enum.max(xs), Enum.min(xs) + 1), Enum.min(ys), Enum.max(ys)}

        [
          axes(scale),
          line(train, scale, "train"),
          line(eval, scale, "eval"),
          ~s(<text x="#{@width - @pad}" y="14" text-anchor="end" class="legend"><tspan class="train">— train</tspan> <tspan class="eval">— eval</tspan></text>)
        ]
      end

    [
      ~s(<svg data-testid="loss-chart" class="loss-chart" viewBox="0 0 #{@width} #{@height}" role="img" aria-label="Loss against step: #{length(train)} train points, #{length(eval)} eval points" data-train-points="#{length(train)}" data-eval-points="#{length(eval)}">),
      body,
      "</svg>"
    ]
  end

  defp points(events) do
    {train, eval, _offset, _last} =
      Enum.reduce(events, {[], [], 0, 0}, fn event, {train, eval, offset, last} ->
        step = if is_integer(event["step"]), do: event["step"], else: last - offset
        offset = if step + offset < last, do: last, else: offset
        x = step + offset
        metrics = event["metrics"] || %{}
        train = if is_number(metrics["loss"]), do: [{x, metrics["loss"] / 1} | train], else: train

        eval =
          if is_number(metrics["eval_loss"]),
            do: [{x, metrics["eval_loss"] / 1} | eval],
            else: eval

        {train, eval, offset, x}
      end)

    {Enum.reverse(train), Enum.reverse(eval)}
  end

  defp axes({x0, x1, y0, y1}) do
    [
      ~s(<line class="axis" x1="#{@pad}" y1="#{@height - @pad}" x2="#{@width - 8}" y2="#{@height - @pad}"/>),
      ~s(<line class="axis" x1="#{@pad}" y1="8" x2="#{@pad}" y2="#{@height - @pad}"/>),
      ~s(<text x="#{@pad}" y="#{@height - 8}" class="tick">step #{x0}</text>),
      ~s(<text x="#{@width - 8}" y="#{@height - 8}" text-anchor="end" class="tick">#{x1}</text>),
      ~s(<text x="4" y="16" class="tick">#{fmt(y1)}</text>),
      ~s(<text x="4" y="#{@height - @pad}" class="tick">#{fmt(y0)}</text>)
    ]
  end

  defp line([], _scale, _class), do: []

  defp line(points, {x0, x1, y0, y1}, class) do
    span_y = if y1 > y0, do: y1 - y0, else: 1.0

    coords =
      Enum.map_join(points, " ", fn {x, y} ->
        px = @pad + (x - x0) / (x1 - x0) * (@width - @pad - 8)
        py = 8 + (1 - (y - y0) / span_y) * (@height - @pad - 8)
        "#{Float.round(px / 1, 1)},#{Float.round(py / 1, 1)}"
      end)

    [~s(<polyline class="#{class}" points="#{coords}"/>)]
  end

  defp fmt(y), do: :erlang.float_to_binary(y / 1, decimals: 3)

  defp where(progress) do
    stage =
      case {progress["stage"], progress["stages"]} do
        {s, n} when is_integer(s) and is_integer(n) -> "stage #{s}/#{n}"
        _ -> nil
      end

    phase = if is_binary(progress["phase"]), do: progress["phase"]

    steps =
      case {progress["step"], progress["total_steps"]} do
        {s, t} when is_integer(s) and is_integer(t) and t > 0 -> "step #{s}/#{t}"
        _ -> nil
      end

    [stage, phase, steps] |> Enum.reject(&(&1 in [nil, ""])) |> Enum.join(" · ")
  end

  defp eta("running", %{"eta_ms" => eta}) when is_number(eta) and eta > 0,
    do: ProgressBar.duration(eta)

  defp eta("running", _progress), do: "unknown"
  defp eta("queued", _progress), do: "waiting"
  defp eta(_final, _progress), do: "—"
end
