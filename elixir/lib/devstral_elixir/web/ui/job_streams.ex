defmodule DevstralElixir.Web.UI.JobStreams do
  @moduledoc """
  The live feeds of the jobs pages, as Server-Sent Events that htmx's SSE
  extension swaps into the page (`sse-swap`):

    * `GET /ui/events/jobs` - event `jobs`: the rows of `/jobs`;
    * `GET /ui/events/jobs/ID` - events `summary`, `log` and `chart`: the
      job page's blocks.

  Each feed subscribes to `DevstralElixir.Jobs.Events` (pushed by the queue
  as jobs change and report progress; nothing polls), sends the current
  state at once, then re-renders at most every 250 ms while events
  arrive. A comment line every 15 s finds a closed connection, whose feed
  then ends.
  """

  alias DevstralElixir.Jobs.{Events, Queue}
  alias DevstralElixir.Web.ChunkedStream
  alias DevstralElixir.Web.UI.{JobsPage, JobView, Response}

  @tick_ms 250
  @keepalive_ms 15_000

  @doc "The feed of every job."
  @spec all(map()) :: term()
  def all(%{ui: ui}) do
    admin? = ui.role == :admin

    feed(:all, fn ->
      [event("jobs", JobView.rows(Queue.list(Queue, limit: 200), admin?, ui.csrf))]
    end)
  end

  @doc "The feed of one job."
  @spec one(String.t(), map()) :: term()
  def one(id_text, %{ui: ui} = env) do
    case Integer.parse(id_text) do
      {id, ""} when id > 0 ->
        admin? = ui.role == :admin

        feed(id, fn ->
          case Queue.get(Queue, id) do
            {:ok, job} ->
              events = JobsPage.history(job)

              [
                event("summary", JobView.summary(job, admin?, ui.csrf)),
                event("log", JobView.log(events)),
                event("chart", JobView.chart(events))
              ]

            {:error, :not_found} ->
              []
          end
        end)

      _ ->
        Response.json(404, %{"error" => "no job #{id_text}"}, env.ui)
    end
  end

  defp feed(key, render) do
    prepare = fn ->
      :ok = Events.subscribe(key)
      {:ok, render}
    end

    {:ok, pid} = ChunkedStream.start(prepare, fn render, emit -> run(render, emit) end)

    headers =
      [{"content-type", "text/event-stream"}, {"cache-control", "no-cache"}] ++
        Response.security_headers()

    {:stream, 200, headers, pid}
  end

  defp run(render, emit) do
    case emit.(render.()) do
      :ok -> loop(render, emit)
      error -> error
    end
  end

  defp loop(render, emit) do
    receive do
      {Events, _id, _event} ->
        drain(System.monotonic_time(:millisecond) + @tick_ms)
        run(render, emit)
    after
      @keepalive_ms ->
        case emit.(": keepalive\n\n") do
          :ok -> loop(render, emit)
          error -> error
        end
    end
  end

  # Gathers the events of one tick, so a burst of progress reports costs one render.
  defp drain(deadline) do
    receive do
      {Events, _id, _event} -> drain(deadline)
    after
      max(deadline - System.monotonic_time(:millisecond), 0) -> :ok
    end
  end

  @doc "One SSE event whose data is an HTML fragment (one `data:` line per line)."
  @spec event(String.t(), iodata()) :: iodata()
  def event(name, html) do
    lines = html |> IO.iodata_to_binary() |> String.split(["\r\n", "\n", "\r"])
    ["event: ", name, "\n", Enum.map(lines, &["data: ", &1, "\n"]), "\n"]
  end
end
