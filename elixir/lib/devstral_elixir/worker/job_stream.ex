defmodule DevstralElixir.Worker.JobStream do
  @moduledoc """
  The host's one client for the worker's job calls: `Train`, `Evaluate` and
  `BuildDataset` answer with a stream of `DevstralElixir.Proto.JobEvent`s.

  `run/4` waits for the worker to be ready, passes every event to `report` as
  a plain map (`event_to_map/1`) and returns the call's outcome:

    * the `COMPLETED` event's map, as `{:ok, map}`;
    * `{:invalid, message}` when the worker rejects the request
      (`INVALID_ARGUMENT`: a bad setting, a missing dataset or model), which
      no retry can fix;
    * `{:error, message}` for a `FAILED` or `CANCELLED` event, a failed call,
      a raise or an exit, or a stream that ends without `COMPLETED`.

  Messages start with the method's name (`"Train failed: ..."`). A caller
  that dies mid-call takes its stream with it, and the worker cancels the
  call; `cancel/2` stops a call by its job id from another process.

  A worker is `{module, server}`: `DevstralElixir.Worker` and its name or pid,
  or a test double with the same `stream/3` and `call/4` (and optionally
  `await_ready/2`).
  """

  alias DevstralElixir.Proto.{CancelJobRequest, JobEvent}

  @type worker :: {module(), GenServer.server()}
  @type result :: {:ok, map()} | {:error, String.t()} | {:invalid, String.t()}

  # A job re-queued at boot must not spend an attempt on a worker still loading.
  @ready_timeout 300_000

  @doc "The application's own worker: `{DevstralElixir.Worker, DevstralElixir.Worker}`."
  @spec host_worker() :: worker()
  def host_worker, do: {DevstralElixir.Worker, DevstralElixir.Worker}

  @doc "Runs `method` with `request` on `worker`; every event goes to `report`."
  @spec run(worker(), String.t(), struct(), (map() -> any())) :: result()
  def run({module, server}, method, request, report) do
    if function_exported?(module, :await_ready, 2) do
      with {:error, error} <- module.await_ready(server, @ready_timeout), do: raise(error)
    end

    server
    |> module.stream(method, request)
    |> Enum.reduce_while(nil, &step(&1, &2, method, report))
    |> case do
      nil -> {:error, "the worker's #{method} stream ended without a COMPLETED event"}
      result -> result
    end
  rescue
    exception -> failure(method, exception)
  catch
    :exit, reason -> {:error, "#{method} failed: #{Exception.format_exit(reason)}"}
  end

  @doc "Asks `worker` to cancel the call running under `job_id` (best effort)."
  @spec cancel(worker(), String.t()) :: :ok
  def cancel({module, server}, job_id) do
    _ = module.call(server, "CancelJob", %CancelJobRequest{job_id: job_id})
    :ok
  rescue
    _ -> :ok
  catch
    :exit, _ -> :ok
  end

  @doc "A `JobEvent` as a plain map (kind as a string, metrics as a map)."
  @spec event_to_map(JobEvent.t()) :: map()
  def event_to_map(%JobEvent{} = event) do
    %{
      kind: kind_name(event.kind),
      phase: event.phase,
      message: event.message,
      step: event.step,
      total_steps: event.total_steps,
      elapsed_ms: event.elapsed_ms,
      eta_ms: event.eta_ms,
      metrics: event.metrics,
      artifact_path: event.artifact_path
    }
  end

  defp step({:error, reason}, _acc, method, _report), do: {:halt, failure(method, reason)}

  defp step(%JobEvent{kind: kind} = event, acc, method, report) do
    map = event_to_map(event)
    report.(map)

    case kind do
      :COMPLETED -> {:cont, {:ok, map}}
      :FAILED -> {:halt, {:error, "#{method} failed: #{event.message}"}}
      :CANCELLED -> {:halt, {:error, "#{method} was cancelled: #{event.message}"}}
      _other -> {:cont, acc}
    end
  end

  defp failure(method, %{status: :invalid_argument} = error),
    do: {:invalid, "#{method} rejected the request: #{describe(error)}"}

  defp failure(method, reason), do: {:error, "#{method} failed: #{describe(reason)}"}

  defp kind_name(kind) when is_atom(kind), do: Atom.to_string(kind)
  defp kind_name(kind), do: to_string(kind)

  defp describe(reason) when is_binary(reason), do: reason
  defp describe(%{__exception__: true} = exception), do: Exception.message(exception)
  defp describe(%{message: message}) when is_binary(message), do: message
  defp describe(reason), do: inspect(reason)
end
