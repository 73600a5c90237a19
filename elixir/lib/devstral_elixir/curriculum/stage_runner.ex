defmodule DevstralElixir.Curriculum.StageRunner do
  @moduledoc """
  The `:train_stage` job (`mix train --stage N`): one stage of a curriculum,
  checked first (`DevstralElixir.Curriculum.Preflight`), then trained,
  measured and gated exactly as inside a full run
  (`DevstralElixir.Curriculum.TrainAndGate`), into `adapters_dir/RUN/stageN/`,
  and recorded in the run's `run.json`.

  It starts from `"init_adapter"` when given, else from the previous stage's
  adapter of the same run when run.json records that stage as passed, else
  from the base model.
  Args: see `DevstralElixir.Curriculum.Plan` (`"stage"` is required).
  """

  @behaviour DevstralElixir.Jobs.Runner

  alias DevstralElixir.Curriculum.{Config, Plan, Preflight, RunRecord, TrainAndGate, WorkerClient}
  alias DevstralElixir.Jobs.Job

  @impl true
  def run(%Job{} = job, report) do
    with {:ok, plan} <- Plan.from_args(job.args, job: job, stage?: true),
         {:ok, stage} <- Config.stage(plan.config, plan.stage) do
      execute(plan, stage, client(), report)
    else
      {:error, message} -> {:discard, message}
    end
  end

  @impl true
  def cancel(%Job{} = job), do: client().cancel(WorkerClient.job_id(job))

  @impl true
  def resource(_args), do: "worker:default"

  @impl true
  def validate_args(args) do
    with {:ok, plan} <- Plan.from_args(args, stage?: true),
         {:ok, stage} <- Config.stage(plan.config, plan.stage) do
      Preflight.at_enqueue(plan, [stage], plan.init_adapter)
    end
  end

  @doc "Runs one stage of `plan` with a `WorkerClient` module; returns what a runner returns."
  @spec execute(Plan.t(), Config.Stage.t(), module(), (map() -> :ok)) ::
          {:ok, map()} | {:discard, String.t()} | {:error, String.t()}
  def execute(plan, stage, client, report) do
    init_adapter = plan.init_adapter || previous_adapter(plan, stage.number)

    case Preflight.check(plan, [stage], client, init_adapter) do
      :ok -> run_stage(plan, stage, client, report, init_adapter)
      {:invalid, message} -> {:discard, message}
      {:error, message} -> {:error, message}
    end
  end

  defp run_stage(plan, stage, client, report, init_adapter) do
    case TrainAndGate.run(plan, stage, client: client, report: report, init_adapter: init_adapter) do
      {:ok, summary} ->
        :ok = RunRecord.write(plan, "stage #{stage.number} passed", [summary], nil)
        {:ok, Map.merge(summary, %{run: plan.run, run_dir: plan.run_dir})}

      {:gate_failed, summary} ->
        reason =
          "stage #{summary.stage} gate failed: #{summary.reason}; its adapter is kept, not promoted"

        :ok = RunRecord.write(plan, "stopped", [summary], reason)
        {:discard, reason}

      {:invalid, message} ->
        {:discard, message}

      {:error, message} ->
        {:error, message}
    end
  end

  defp previous_adapter(_plan, 1), do: nil

  defp previous_adapter(plan, number) do
    case RunRecord.stage(plan, number - 1) do
      %{"passed" => true, "adapter" => adapter} -> adapter
      _ -> nil
    end
  end

  defp client, do: Application.get_env(:devstral_elixir, :curriculum_client, WorkerClient)
end
