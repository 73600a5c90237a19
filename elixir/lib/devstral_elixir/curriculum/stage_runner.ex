defmodule DevstralElixir.Curriculum.StageRunner do
  @moduledoc """
  The `:train_stage` job (`mix train --stage N`): one stage of a curriculum,
  checked first (`DevstralElixir.Curriculum.Preflight`), then trained,
  evaluated and gated exactly as inside a full run
  (`DevstralElixir.Curriculum.StageRun`), into `adapters_dir/RUN/stageN/`.

  It starts from `"init_adapter"` when given, else from the previous stage's
  adapter of the same run when that exists, else from the base model.
  Args: see `DevstralElixir.Curriculum.Plan` (`"stage"` is required).
  """

  @behaviour DevstralElixir.Jobs.Runner

  alias DevstralElixir.Curriculum.{Config, Plan, Preflight, StageRun, WorkerClient}
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
    with {:ok, _plan} <- Plan.from_args(args, stage?: true), do: :ok
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
    case StageRun.run(plan, stage, client: client, report: report, init_adapter: init_adapter) do
      {:ok, summary} ->
        {:ok, Map.merge(summary, %{run: plan.run, run_dir: plan.run_dir})}

      {:gate_failed, summary} ->
        {:discard,
         "stage #{summary.stage} gate failed: #{summary.reason}; its adapter is kept, not promoted"}

      {:invalid, message} ->
        {:discard, message}

      {:error, message} ->
        {:error, message}
    end
  end

  defp previous_adapter(_plan, 1), do: nil

  defp previous_adapter(plan, number) do
    dir = Plan.stage_dir(plan, number - 1)
    if File.regular?(Path.join(dir, "adapter_config.json")), do: dir, else: nil
  end

  defp client, do: Application.get_env(:devstral_elixir, :curriculum_client, WorkerClient)
end
