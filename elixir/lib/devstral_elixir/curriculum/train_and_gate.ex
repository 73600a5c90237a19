defmodule DevstralElixir.Curriculum.TrainAndGate do
  @moduledoc """
  One curriculum stage: the worker trains and measures it, the host gates it.

   1. The worker trains `RUN/stageN/` from `init_adapter` (`Train`). It
      measures eval loss on the stage's Elixir rows and on general code
      before and after training, writes the stage's `metrics.json` (its only
      writer) and reports those numbers in its `COMPLETED` event, with the
      adapter directory as `artifact_path`. The host always asks it to
      resume: the worker continues from a checkpoint when its output
      directory holds one (a retry after a crash) and starts fresh otherwise.
   2. The host applies the gate (`DevstralElixir.Curriculum.Gate`) to the
      reported numbers and records the verdict in its own records: the job
      (Mnesia: a `gate` progress event and the job's result) and the run's
      `RUN/run.json` (`DevstralElixir.Curriculum.RunRecord`). It writes
      nothing into the worker's stage directory.

  With `execution_eval` in the config, the stage's adapter is then evaluated
  by running code (`DevstralElixir.Curriculum.ExecutionEval`): pass@1 and the
  compile rate join the reported numbers (and the stage's `metrics.json`,
  written by the worker), with the base model's pass@1 as `base_pass_at_1`.

  Before it starts, a stage tells the queue it is the job's unit of work
  (`report.({:unit, "stage N"})`), so attempts are counted per stage.

  A stage that `run.json` already records a verdict for is not run again;
  its recorded result is returned. So a curriculum job that is retried or
  resumed after a restart continues where it stopped.

  Results: `{:ok, summary}` (gate passed), `{:gate_failed, summary}`,
  `{:invalid, message}` (a problem that a retry cannot fix: arguments the
  worker rejects) or `{:error, message}`.
  """

  alias DevstralElixir.Curriculum.{ExecutionEval, Gate, Plan, Requests, RunRecord}
  alias DevstralElixir.Curriculum.Config.Stage

  @type summary :: %{
          stage: pos_integer(),
          name: String.t(),
          adapter: Path.t() | nil,
          passed: boolean(),
          reason: String.t() | nil,
          gate: Gate.verdict() | map(),
          reported: Gate.reported()
        }
  @type result ::
          {:ok, summary()}
          | {:gate_failed, summary()}
          | {:invalid, String.t()}
          | {:error, String.t()}

  @doc """
  Runs `stage` of `plan`. Options: `:client` (a `WorkerClient` module),
  `:report` (the job's report function), `:init_adapter` (the adapter to
  start from, nil for the base model), `:stages` (the number of stages in
  the run, for progress) and `:baseline` (the base model's execution-based
  numbers, from `ExecutionEval.baseline/3`).
  """
  @spec run(Plan.t(), Stage.t(), keyword()) :: result()
  def run(%Plan{} = plan, %Stage{} = stage, opts) do
    opts =
      Keyword.validate!(opts, [:client, :report, init_adapter: nil, stages: 1, baseline: nil])

    ctx = %{
      plan: plan,
      stage: stage,
      client: opts[:client],
      report: opts[:report],
      stages: opts[:stages],
      init_adapter: opts[:init_adapter],
      baseline: opts[:baseline]
    }

    case RunRecord.stage(plan, stage.number) do
      %{"passed" => passed} = recorded ->
        summary = from_record(recorded)
        note(ctx, "done", "stage #{stage.number} already has a verdict; not run again")
        if passed, do: {:ok, summary}, else: {:gate_failed, summary}

      nil ->
        execute(ctx)
    end
  end

  @doc "True when the run's record already holds stage's verdict: the run will not train it again."
  @spec done?(Plan.t(), Stage.t()) :: boolean()
  def done?(%Plan{} = plan, %Stage{} = stage), do: RunRecord.stage(plan, stage.number) != nil

  @doc "The `Train` request for `stage` of `plan` (`validate_only`: only checked)."
  @spec request(Plan.t(), Stage.t(), Path.t() | nil, keyword()) ::
          DevstralElixir.Proto.TrainRequest.t()
  def request(%Plan{} = plan, %Stage{} = stage, init_adapter, opts \\ []) do
    opts = Keyword.validate!(opts, validate_only: false)

    # A check must not share the job's id: CancelJob would reach it too.
    job_id =
      if opts[:validate_only],
        do: "#{plan.job_id}-check-stage#{stage.number}",
        else: plan.job_id

    Requests.train(stage,
      job_id: job_id,
      base_model: plan.config.base_model,
      dataset_dir: plan.config.dataset_dir,
      output_dir: Plan.stage_dir(plan, stage.number),
      init_adapter: init_adapter,
      general_eval: plan.config.general_eval,
      resume: true,
      validate_only: opts[:validate_only]
    )
  end

  defp execute(ctx) do
    %{plan: plan, stage: stage} = ctx
    # From here on, failures are this stage's: the queue counts attempts per
    # stage, so crashes in earlier stages do not spend this one's retries.
    ctx.report.({:unit, "stage #{stage.number}"})

    note(
      ctx,
      "start",
      "stage #{stage.number} (#{stage.name}) from #{ctx.init_adapter || plan.config.base_model}"
    )

    request = request(plan, stage, ctx.init_adapter)

    with {:ok, completed} <- ctx.client.train(request, reporter(ctx, "train")),
         {:ok, measured} <-
           ExecutionEval.stage(plan, stage.number, adapter(completed) || "", ctx.client,
             report: reporter(ctx, "evaluate"),
             baseline: ctx.baseline
           ) do
      reported = Map.merge(completed[:metrics] || %{}, measured)
      verdict = Gate.verdict(stage.gate, reported)

      summary = %{
        stage: stage.number,
        name: stage.name,
        adapter: adapter(completed),
        passed: verdict.passed,
        reason: verdict.reason,
        gate: verdict,
        reported: reported
      }

      outcome = if verdict.passed, do: "passed", else: "failed: #{verdict.reason}"

      # The verdict goes into the job's own state (its progress, in Mnesia).
      reporter(ctx, "gate").(%{
        kind: "LOG",
        message: "stage #{stage.number} gate #{outcome}",
        gate: verdict
      })

      if verdict.passed, do: {:ok, summary}, else: {:gate_failed, summary}
    end
  end

  # The worker names its adapter directory; the host does not guess the layout.
  defp adapter(%{artifact_path: path}) when is_binary(path) and path != "", do: path
  defp adapter(_completed), do: nil

  defp from_record(recorded) do
    %{
      stage: recorded["stage"],
      name: recorded["name"],
      adapter: recorded["adapter"],
      passed: recorded["passed"],
      reason: recorded["reason"],
      gate: recorded["gate"] || %{},
      reported: recorded["reported"] || %{}
    }
  end

  # Progress

  defp reporter(ctx, what) do
    fn event ->
      ctx.report.(
        Map.merge(event, %{
          phase: "stage#{ctx.stage.number}/#{what}",
          worker_phase: event[:phase],
          stage: ctx.stage.number,
          stages: ctx.stages
        })
      )
    end
  end

  defp note(ctx, what, message) do
    reporter(ctx, what).(%{kind: "LOG", message: message})
  end
end
