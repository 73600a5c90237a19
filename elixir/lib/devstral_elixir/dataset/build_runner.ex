defmodule DevstralElixir.Dataset.BuildRunner do
  @moduledoc """
  The `:build_dataset` job: `DevstralElixir.Dataset.Build` on the host's
  worker, with its progress published to the job's subscribers.

  Args (JSON): `"inputs"` (directories), `"out"`, and optionally `"config"`
  (a file), `"seed"` and `"eval_files"`. The build writes to a temporary
  directory and renames it when done, so a retried job starts clean. A
  request the worker rejects (a broken manifest, a bad config field) fails
  the job at once: no retry can fix it.
  """
  @behaviour DevstralElixir.Jobs.Runner

  alias DevstralElixir.Dataset.Build
  alias DevstralElixir.Jobs.Job
  alias DevstralElixir.Worker.JobStream

  @impl true
  def validate_args(args) do
    _ = request(args, "validate")
    :ok
  rescue
    error in ArgumentError -> {:error, Exception.message(error)}
  end

  @impl true
  def resource(_args), do: "worker:default"

  @impl true
  def cancel(%Job{id: id}), do: JobStream.cancel(JobStream.host_worker(), job_id(id))

  @impl true
  def run(%Job{id: id, args: args}, report) do
    request = request(args, job_id(id))

    case Build.run(DevstralElixir.Worker, request, report) do
      {:ok, done} -> {:ok, %{"out" => done.artifact_path, "metrics" => done.metrics}}
      {:invalid, message} -> {:discard, message}
      {:error, message} -> {:error, message}
    end
  rescue
    error in ArgumentError -> {:discard, Exception.message(error)}
  end

  defp request(args, job_id) do
    Build.request!(
      inputs: List.wrap(args["inputs"]),
      out: args["out"],
      config: args["config"],
      seed: args["seed"] || 0,
      eval_files: List.wrap(args["eval_files"]),
      job_id: job_id
    )
  end

  defp job_id(id), do: "job-#{id}-build"
end
