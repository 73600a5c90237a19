defmodule DevstralElixir.Jobs.ProgressBar do
  @moduledoc """
  One line of text showing where a job is, for the CLI:

      [##########..........]  50% stage 2/3 train  step 40/80  loss 1.2345  eta 3m05s  running (attempt 1/3)

  It works on the job's JSON form (`DevstralElixir.Jobs.Job.to_json/1`, or
  what `GET /api/jobs/ID` returns), so local and remote jobs render the same.
  A curriculum's fraction counts its finished stages: stage 2 of 3 at training
  step 40/80 is (1 + 0.5) / 3 = 50%; a stage's evaluations before training
  count as 0 and those after it as 1.
  """

  @doc "The progress line of a job (a JSON map with string keys)."
  @spec render(map(), pos_integer()) :: String.t()
  def render(job, width \\ 30) do
    progress = job["progress"] || %{}
    fraction = fraction(job, progress)

    [
      bar(fraction, width),
      percent(fraction),
      where(progress),
      steps(progress),
      loss(progress),
      eta(progress),
      status(job)
    ]
    |> Enum.reject(&(&1 in [nil, ""]))
    |> Enum.join("  ")
  end

  @doc "The job's overall fraction done, from 0.0 to 1.0."
  @spec fraction(map(), map()) :: float()
  def fraction(%{"state" => "succeeded"}, _progress), do: 1.0

  def fraction(_job, progress) do
    step_fraction =
      case {progress["step"], progress["total_steps"]} do
        {step, total} when is_number(step) and is_number(total) and total > 0 ->
          min(step / total, 1.0)

        _ ->
          0.0
      end

    case {progress["stage"], progress["stages"]} do
      {stage, stages} when is_integer(stage) and is_integer(stages) and stages > 0 ->
        min((stage - 1 + stage_fraction(progress["phase"], step_fraction)) / stages, 1.0)

      _ ->
        step_fraction
    end
  end

  # Within a curriculum stage only training moves the bar: the evaluations
  # before it count as not started, those after it (and the gate) as done.
  defp stage_fraction(phase, step_fraction) when is_binary(phase) do
    case phase |> String.split("/") |> List.last() do
      "start" -> 0.0
      "eval-before" <> _ -> 0.0
      "eval-after" <> _ -> 1.0
      "gate" -> 1.0
      "done" -> 1.0
      _train -> step_fraction
    end
  end

  defp stage_fraction(_phase, step_fraction), do: step_fraction

  @doc "A duration in ms as `1h02m`, `3m05s` or `42s`."
  @spec duration(number()) :: String.t()
  def duration(ms) when is_number(ms) do
    seconds = trunc(ms / 1000)

    cond do
      seconds >= 3600 -> "#{div(seconds, 3600)}h#{pad(div(rem(seconds, 3600), 60))}m"
      seconds >= 60 -> "#{div(seconds, 60)}m#{pad(rem(seconds, 60))}s"
      true -> "#{seconds}s"
    end
  end

  defp bar(fraction, width) do
    done = round(fraction * width)
    "[" <> String.duplicate("#", done) <> String.duplicate(".", width - done) <> "]"
  end

  defp percent(fraction), do: String.pad_leading("#{round(fraction * 100)}%", 4)

  defp where(progress) do
    stage =
      case {progress["stage"], progress["stages"]} do
        {stage, stages} when is_integer(stage) and is_integer(stages) ->
          "stage #{stage}/#{stages}"

        _ ->
          nil
      end

    phase =
      case progress["phase"] do
        phase when is_binary(phase) and phase != "" -> phase |> String.split("/") |> List.last()
        _ -> nil
      end

    [stage, phase] |> Enum.reject(&is_nil/1) |> Enum.join(" ")
  end

  defp steps(%{"step" => step, "total_steps" => total})
       when is_integer(step) and is_integer(total) and total > 0,
       do: "step #{step}/#{total}"

  defp steps(_progress), do: nil

  defp loss(%{"metrics" => metrics}) when is_map(metrics) do
    case metrics["loss"] || metrics["eval_loss"] do
      loss when is_number(loss) -> "loss " <> :erlang.float_to_binary(loss / 1, decimals: 4)
      _ -> nil
    end
  end

  defp loss(_progress), do: nil

  defp eta(%{"eta_ms" => eta}) when is_number(eta) and eta > 0, do: "eta " <> duration(eta)
  defp eta(_progress), do: nil

  defp status(job) do
    attempts =
      case {job["attempts"], job["max_attempts"]} do
        {n, max} when is_integer(n) and is_integer(max) and n > 0 -> " (attempt #{n}/#{max})"
        _ -> ""
      end

    "#{job["state"]}#{attempts}"
  end

  defp pad(n), do: n |> Integer.to_string() |> String.pad_leading(2, "0")
end
