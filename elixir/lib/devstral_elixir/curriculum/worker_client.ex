defmodule DevstralElixir.Curriculum.WorkerClient do
  @moduledoc """
  The curriculum's only way to the Python worker: train, evaluate, cancel.

  It is also a behaviour, so the runner can be driven by a fake in tests
  (`DevstralElixir.Curriculum.Runner` takes the client module as an option).

  This implementation calls `DevstralElixir.Worker.stream/3` (the server and
  module come from the `:curriculum_worker` application environment,
  `{module, server}`, default `{DevstralElixir.Worker, DevstralElixir.Worker}`).
  The stream yields `DevstralElixir.Proto.JobEvent`s; every event is passed to
  `report` as a map (`event_to_map/1`), and the call's result is

    * the `COMPLETED` event's map, as `{:ok, map}`;
    * `{:invalid, message}` when the worker rejects the request
      (`INVALID_ARGUMENT`: a bad setting, a missing dataset or model), which
      no retry can fix;
    * `{:error, message}` for a `FAILED` or `CANCELLED` event, any other
      `{:error, reason}` item, a raise or an exit of the stream, or a stream
      that ends without `COMPLETED`.

  Eval losses: an `Evaluate` call is made with one file in `loss_datasets`,
  and its loss is read from the final metrics by `loss/1` (`eval_loss`, else
  `loss`, else the only metric whose name contains "loss").
  """

  alias DevstralElixir.Proto.{CancelJobRequest, EvaluateRequest, JobEvent, TrainRequest}

  @type report :: (map() -> :ok)

  @type result :: {:ok, map()} | {:error, String.t()} | {:invalid, String.t()}

  @callback train(TrainRequest.t(), report()) :: result()
  @callback evaluate(EvaluateRequest.t(), report()) :: result()
  @callback cancel(job_id :: String.t()) :: :ok
  @callback validate_train(TrainRequest.t()) ::
              :ok | {:invalid, String.t()} | {:error, String.t()}

  # A client without validate_train (a test double) skips the worker's checks.
  @optional_callbacks validate_train: 1

  @doc "Trains; every event goes to `report`."
  @spec train(TrainRequest.t(), report()) :: result()
  def train(%TrainRequest{} = request, report), do: consume("Train", request, report)

  @doc "Evaluates; every event goes to `report`."
  @spec evaluate(EvaluateRequest.t(), report()) :: result()
  def evaluate(%EvaluateRequest{} = request, report), do: consume("Evaluate", request, report)

  @doc """
  Asks the worker whether it would accept `request` (sent with
  `validate_only`: nothing is trained). `{:invalid, problems}` holds the
  worker's own field-level messages, one a line; `{:error, _}` means the worker could not
  be asked.
  """
  @spec validate_train(TrainRequest.t()) :: :ok | {:invalid, String.t()} | {:error, String.t()}
  def validate_train(%TrainRequest{} = request) do
    case consume("Train", %{request | validate_only: true}, fn _event -> :ok end) do
      {:ok, _completed} ->
        :ok

      {:invalid, "Train rejected the request: " <> problems} ->
        {:invalid, String.replace_prefix(problems, "invalid_argument: ", "")}

      other ->
        other
    end
  end

  @doc "Asks the worker to cancel the job's running call (best effort)."
  @spec cancel(String.t()) :: :ok
  def cancel(job_id) do
    {module, server} = worker()
    _ = module.call(server, "CancelJob", %CancelJobRequest{job_id: job_id})
    :ok
  rescue
    _ -> :ok
  catch
    :exit, _ -> :ok
  end

  @doc "The id a queue job's calls carry on the worker side."
  @spec job_id(DevstralElixir.Jobs.Job.t()) :: String.t()
  def job_id(%{id: id}), do: "job-#{id}"

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

  @doc "The eval loss in an Evaluate call's final metrics, or nil."
  @spec loss(map()) :: float() | nil
  def loss(%{metrics: metrics}), do: loss(metrics)

  def loss(metrics) when is_map(metrics) do
    cond do
      is_number(metrics["eval_loss"]) ->
        metrics["eval_loss"]

      is_number(metrics["loss"]) ->
        metrics["loss"]

      true ->
        case Enum.filter(metrics, fn {name, value} -> name =~ "loss" and is_number(value) end) do
          [{_name, value}] -> value
          _none_or_ambiguous -> nil
        end
    end
  end

  defp consume(method, request, report) do
    {module, server} = worker()

    # A job re-queued at boot must not spend an attempt on a worker still loading.
    if function_exported?(module, :await_ready, 2) do
      with {:error, error} <- module.await_ready(server, 300_000), do: raise(error)
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

  defp worker do
    Application.get_env(
      :devstral_elixir,
      :curriculum_worker,
      {DevstralElixir.Worker, DevstralElixir.Worker}
    )
  end
end
