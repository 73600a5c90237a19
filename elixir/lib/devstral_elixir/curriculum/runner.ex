defmodule DevstralElixir.Curriculum.Runner do
  @moduledoc """
  The `:curriculum` job: runs the stages of a curriculum in order, each
  trained and measured by the worker and gated by the host
  (`DevstralElixir.Curriculum.TrainAndGate`), under `adapters_dir/RUN/`:

    * `RUN/stageN/` - the worker's: the stage's adapter, checkpoints and
      `metrics.json` (what it measured; the worker is its only writer);
    * `RUN/run.json` - the host's (`DevstralElixir.Curriculum.RunRecord`): the
      run's status, each stage's reported numbers and gate verdict, and the
      promoted adapter;
    * `RUN/baseline.json` - the host's: the base model's execution-based
      numbers, when the config has `execution_eval`
      (`DevstralElixir.Curriculum.ExecutionEval`, measured before stage 1);
    * `RUN/REPORT.md` and `RUN/report.svg` - the host's
      (`DevstralElixir.Curriculum.Report`): base model and stages compared.

  Before any training the whole plan is checked
  (`DevstralElixir.Curriculum.Preflight`): a plan that cannot finish fails at
  once, without retry, with one message listing every problem.

  Attempts are counted per stage: each stage announces itself as the job's
  unit of work, so the queue's `max_attempts` applies to each stage afresh
  and crashes in earlier, finished stages do not spend a later one's retries.

  A stage whose gate fails stops the run: the job fails without retry, the
  reason is recorded in the job and in run.json; the adapter is kept on disk
  but not promoted. Any other failure is retried by
  the queue, and the retry skips the finished stages and resumes training
  from the last checkpoint.

  ## Chaining: one adapter, continued

  Stage N trains the *same* LoRA adapter further: it starts from stage N−1's
  adapter (`init_adapter`) and writes a new copy into its own directory.
  We do not merge the adapter into the base between stages because:

    * the base is 4-bit NF4 under QLoRA; merging means dequantising, adding the
      LoRA delta and re-quantising, which adds rounding error at every stage,
      and the next stage would then train on a slightly different model than
      the one that passed the gate;
    * a continued adapter keeps every stage's artifact small and servable as a
      LoRA on the unchanged base (vLLM serves LoRA adapters, not per-stage
      merged copies), and lets any stage be promoted or rolled back alone;
    * the forgetting guard's L2 / EWC terms pull towards "the previous stage's
      weights", which with a continued adapter are exactly the adapter tensors
      stage N starts from.

  The cost is that all stages share one rank-r budget; r = 32 leaves room for
  three stages. Stage 1 with trained embeddings is the one exception the
  worker handles: its serving artifact is a merged model (vLLM cannot serve
  LoRA on embed_tokens/lm_head for Qwen2-family models), stated in the
  adapter's metadata, while training still continues the adapter.

  Args: see `DevstralElixir.Curriculum.Plan`. The runner holds the resource
  `"worker:default"` for the whole run: one training job per worker at a time.
  """

  @behaviour DevstralElixir.Jobs.Runner

  alias DevstralElixir.Curriculum.{
    ExecutionEval,
    Plan,
    Preflight,
    Report,
    RunRecord,
    TrainAndGate,
    WorkerClient
  }

  alias DevstralElixir.Jobs.Job

  @impl true
  def run(%Job{} = job, report) do
    case Plan.from_args(job.args, job: job) do
      {:ok, plan} -> execute(plan, client: client(), report: report)
      {:error, message} -> {:discard, message}
    end
  end

  @impl true
  def cancel(%Job{} = job), do: client().cancel(WorkerClient.job_id(job))

  @impl true
  def resource(_args), do: "worker:default"

  @impl true
  def validate_args(args) do
    with {:ok, plan} <- Plan.from_args(args), do: Preflight.at_enqueue(plan, plan.config.stages)
  end

  @doc """
  Runs every stage of `plan`. Options: `:client` (a `WorkerClient` module)
  and `:report`. Returns what a runner returns: `{:ok, result}`,
  `{:discard, reason}` (a failed gate, an invalid request) or `{:error, reason}`.
  """
  @spec execute(Plan.t(), keyword()) ::
          {:ok, map()} | {:discard, String.t()} | {:error, String.t()}
  def execute(%Plan{} = plan, opts) do
    opts = Keyword.validate!(opts, [:client, report: fn _ -> :ok end])

    case Preflight.check(plan, plan.config.stages, opts[:client]) do
      :ok -> run_stages(plan, opts)
      {:invalid, message} -> {:discard, message}
      {:error, message} -> {:error, message}
    end
  end

  defp run_stages(plan, opts) do
    :ok = RunRecord.write(plan, "running", [], nil)

    case ExecutionEval.baseline(plan, opts[:client], base_reporter(opts[:report])) do
      {:ok, baseline} -> run_stages(plan, opts, baseline)
      {:invalid, message} -> finish({:invalid, "base model evaluation: #{message}", []}, plan)
      {:error, message} -> finish({:error, "base model evaluation: #{message}", []}, plan)
    end
  end

  defp base_reporter(report) do
    fn event ->
      report.(Map.merge(event, %{phase: "base/evaluate", worker_phase: event[:phase]}))
    end
  end

  defp run_stages(plan, opts, baseline) do
    stages = plan.config.stages

    stages
    |> Enum.reduce_while({nil, []}, fn stage, {init_adapter, done} ->
      result =
        TrainAndGate.run(plan, stage,
          client: opts[:client],
          report: opts[:report],
          init_adapter: init_adapter,
          stages: length(stages),
          baseline: baseline
        )

      case result do
        {:ok, summary} ->
          done = done ++ [summary]
          :ok = RunRecord.write(plan, "running", done, nil)
          :ok = Report.write(plan)
          {:cont, {summary.adapter, done}}

        {:gate_failed, summary} ->
          {:halt, {:gate_failed, summary, done ++ [summary]}}

        {:invalid, message} ->
          {:halt, {:invalid, "stage #{stage.number}: #{message}", done}}

        {:error, message} ->
          {:halt, {:error, "stage #{stage.number}: #{message}", done}}
      end
    end)
    |> finish(plan)
  end

  defp finish({_adapter, done}, plan) do
    :ok = RunRecord.write(plan, "succeeded", done, nil)
    :ok = Report.write(plan)
    {:ok, RunRecord.summary(plan, "succeeded", done, nil)}
  end

  defp finish({:gate_failed, summary, done}, plan) do
    reason =
      "stage #{summary.stage} gate failed: #{summary.reason}; its adapter is kept, not promoted"

    :ok = RunRecord.write(plan, "stopped", done, reason)
    :ok = Report.write(plan)
    {:discard, reason}
  end

  defp finish({:invalid, reason, done}, plan) do
    :ok = RunRecord.write(plan, "failed", done, reason)
    {:discard, reason}
  end

  defp finish({:error, reason, _done}, _plan), do: {:error, reason}

  defp client, do: Application.get_env(:devstral_elixir, :curriculum_client, WorkerClient)
end
