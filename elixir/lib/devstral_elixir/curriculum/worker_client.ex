defmodule DevstralElixir.Curriculum.WorkerClient do
  @moduledoc """
  The curriculum's only way to the Python worker: train, evaluate, cancel.

  It is also a behaviour, so the runner can be driven by a fake in tests
  (`DevstralElixir.Curriculum.Runner` takes the client module as an option).

  This implementation runs its calls with `DevstralElixir.Worker.JobStream`
  (every event goes to `report` as a map; the results are those of
  `JobStream.run/4`) on the worker named by the `:curriculum_worker`
  application environment, `{module, server}`, default the host's own
  (`JobStream.host_worker/0`).

  Eval losses: an `Evaluate` call is made with one file in `loss_datasets`,
  and its loss is read from the final metrics by `loss/1` (`eval_loss`, else
  `loss`, else the only metric whose name contains "loss").
  """

  alias DevstralElixir.Proto.{EvaluateRequest, JobEvent, TrainRequest}
  alias DevstralElixir.Worker.JobStream

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
  def cancel(job_id), do: JobStream.cancel(worker(), job_id)

  @doc "The id a queue job's calls carry on the worker side."
  @spec job_id(DevstralElixir.Jobs.Job.t()) :: String.t()
  def job_id(%{id: id}), do: "job-#{id}"

  @doc "A `JobEvent` as a plain map; see `DevstralElixir.Worker.JobStream.event_to_map/1`."
  @spec event_to_map(JobEvent.t()) :: map()
  defdelegate event_to_map(event), to: JobStream

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

  defp consume(method, request, report), do: JobStream.run(worker(), method, request, report)

  defp worker do
    Application.get_env(:devstral_elixir, :curriculum_worker, JobStream.host_worker())
  end
end
