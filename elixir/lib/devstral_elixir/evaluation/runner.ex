defmodule DevstralElixir.Evaluation.Runner do
  @moduledoc """
  The `:evaluate` job: the worker's `Evaluate` with execution (see
  `DevstralElixir.Evaluation.Request` for its args), on the host's worker,
  with its progress published to the job's subscribers.

  Output: `OUT/results.jsonl` and `OUT/summary.json`, where OUT is the
  `"out"` argument or `DATA_DIR/evaluations/SET-jobID` (`evaluation-jobID`
  without a problem set). The job's result is
  `%{"out" => OUT, "summary" => OUT/summary.json, "metrics" => metrics}`. A
  request the worker rejects fails the job at once: no retry can fix it.
  """
  @behaviour DevstralElixir.Jobs.Runner

  alias DevstralElixir.Evaluation.Request
  alias DevstralElixir.Jobs.Job
  alias DevstralElixir.Worker.JobStream

  @impl true
  def validate_args(args) do
    _ = Request.build!(args, DevstralElixir.Config.load(), "validate", "/tmp/validate")
    :ok
  rescue
    error in [ArgumentError, DevstralElixir.Config.Error] -> {:error, Exception.message(error)}
  end

  @impl true
  def resource(_args), do: "worker:default"

  @impl true
  def cancel(%Job{id: id}), do: JobStream.cancel(JobStream.host_worker(), job_id(id))

  @impl true
  def run(%Job{id: id, args: args}, report) do
    config = DevstralElixir.Config.load()
    out = out_dir(args, config, id)
    request = Request.build!(args, config, job_id(id), out)

    case JobStream.run(JobStream.host_worker(), "Evaluate", request, report) do
      {:ok, done} ->
        {:ok, %{"out" => out, "summary" => done.artifact_path, "metrics" => done.metrics}}

      {:invalid, message} ->
        {:discard, message}

      {:error, message} ->
        {:error, message}
    end
  rescue
    error in ArgumentError -> {:discard, Exception.message(error)}
  end

  @doc "Where a job's results go: its `\"out\"`, else `DATA_DIR/evaluations/SET-jobID`."
  @spec out_dir(map(), DevstralElixir.Config.t(), Job.id()) :: Path.t()
  def out_dir(%{"out" => out}, _config, _id) when is_binary(out), do: Path.expand(out)

  def out_dir(args, config, id) do
    set = if p = args["problems"], do: p |> Path.basename() |> Path.rootname(), else: "evaluation"
    Path.join([config.data_dir, "evaluations", "#{set}-job#{id}"])
  end

  defp job_id(id), do: "job-#{id}-evaluate"
end
