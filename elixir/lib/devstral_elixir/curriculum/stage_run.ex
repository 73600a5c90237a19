defmodule DevstralElixir.Curriculum.StageRun do
  @moduledoc """
  Runs one curriculum stage: measure, train, measure again, gate, record.

   1. Prepare the eval sets (`DevstralElixir.Curriculum.EvalSets`).
   2. Measure the starting point (the base model, or `init_adapter`) on the
      Elixir and general-code eval sets; cached in `RUN/eval/stageN-before.json`
      so a retry does not measure twice.
   3. Train into `RUN/stageN/` from `init_adapter`, resuming from the last
      checkpoint when the directory already holds one (a retry after a crash).
   4. Measure the new adapter, apply the gate (`DevstralElixir.Curriculum.Gate`)
      and write `RUN/stageN/metrics.json` (atomically, merged over any
      metrics.json the trainer wrote): training metrics, eval losses before and
      after, the verdict, and `promoted`.

  Before it measures anything, a stage tells the queue it is the job's unit
  of work (`report.({:unit, "stage N"})`), so attempts are counted per stage.

  A stage whose metrics.json already holds a verdict is not run again; its
  recorded result is returned. So a curriculum job that is retried or resumed
  after a restart continues where it stopped.

  Results: `{:ok, summary}` (gate passed), `{:gate_failed, summary}`,
  `{:invalid, message}` (a problem that a retry cannot fix: a missing file,
  arguments the worker rejects) or `{:error, message}`.
  """

  alias DevstralElixir.Curriculum.{EvalSets, Files, Gate, Plan, Requests, WorkerClient}
  alias DevstralElixir.Curriculum.Config.Stage
  alias DevstralElixir.Jobs.Job

  @type summary :: %{
          stage: pos_integer(),
          name: String.t(),
          adapter: Path.t() | nil,
          passed: boolean(),
          reason: String.t() | nil,
          metrics_path: Path.t()
        }
  @type result ::
          {:ok, summary()}
          | {:gate_failed, summary()}
          | {:invalid, String.t()}
          | {:error, String.t()}

  @doc """
  Runs `stage` of `plan`. Options: `:client` (a `WorkerClient` module),
  `:report` (the job's report function), `:init_adapter` (the adapter to
  start from, nil for the base model) and `:stages` (the number of stages in
  the run, for progress).
  """
  @spec run(Plan.t(), Stage.t(), keyword()) :: result()
  def run(%Plan{} = plan, %Stage{} = stage, opts) do
    opts = Keyword.validate!(opts, [:client, :report, init_adapter: nil, stages: 1])
    metrics_path = Path.join(Plan.stage_dir(plan, stage.number), "metrics.json")

    ctx = %{
      plan: plan,
      stage: stage,
      client: opts[:client],
      report: opts[:report],
      stages: opts[:stages],
      init_adapter: opts[:init_adapter],
      metrics_path: metrics_path
    }

    case Files.read_json(metrics_path) do
      {:ok, %{"gate" => %{"passed" => passed}} = metrics} when is_boolean(passed) ->
        summary = summarize(metrics, metrics_path)
        note(ctx, "done", "stage #{stage.number} already has a verdict; not run again")
        if passed, do: {:ok, summary}, else: {:gate_failed, summary}

      _ ->
        execute(ctx)
    end
  end

  @doc "True when stage's metrics.json already holds a gate verdict: the run will not train it again."
  @spec done?(Plan.t(), Stage.t()) :: boolean()
  def done?(%Plan{} = plan, %Stage{} = stage) do
    case Files.read_json(Path.join(Plan.stage_dir(plan, stage.number), "metrics.json")) do
      {:ok, %{"gate" => %{"passed" => passed}}} when is_boolean(passed) -> true
      _ -> false
    end
  end

  # The trainer keeps its checkpoints under output_dir (checkpoints/ or
  # checkpoint-N/); one there means an earlier attempt got that far.
  @doc "True when the stage directory `dir` holds a checkpoint to resume from."
  @spec checkpoint?(Path.t()) :: boolean()
  def checkpoint?(dir) do
    Path.wildcard(Path.join(dir, "checkpoint-*")) != [] or
      Path.wildcard(Path.join([dir, "checkpoints", "*"])) != []
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

    with {:ok, sets} <- eval_sets(ctx),
         {:ok, before} <- baseline(ctx, sets),
         {:ok, trained} <- train(ctx, sets),
         adapter = adapter_dir(ctx, trained),
         {:ok, after_} <- measure(ctx, sets, adapter, "after") do
      verdict =
        Gate.verdict(stage.gate, %{
          elixir_before: before.elixir,
          elixir_after: after_.elixir,
          general_before: before.general,
          general_after: after_.general
        })

      metrics =
        plan
        |> metrics(stage, ctx.init_adapter, adapter, trained, sets, before, after_, verdict)
        |> Job.json_safe()

      existing =
        case Files.read_json(ctx.metrics_path) do
          {:ok, map} -> map
          :error -> %{}
        end

      with :ok <- Files.write_json(ctx.metrics_path, Map.merge(existing, metrics)) do
        summary = summarize(metrics, ctx.metrics_path)
        outcome = if verdict.passed, do: "passed", else: "failed: #{verdict.reason}"
        note(ctx, "gate", "stage #{stage.number} gate #{outcome}")
        if verdict.passed, do: {:ok, summary}, else: {:gate_failed, summary}
      end
    end
  end

  defp eval_sets(ctx) do
    out_dir = Path.join(ctx.plan.run_dir, "eval")

    case EvalSets.prepare(
           ctx.stage.eval_set,
           ctx.plan.config.general_eval,
           out_dir,
           ctx.stage.number
         ) do
      {:ok, sets} -> {:ok, sets}
      {:error, message} -> {:invalid, message}
    end
  end

  defp baseline(ctx, sets) do
    cache = Path.join([ctx.plan.run_dir, "eval", "stage#{ctx.stage.number}-before.json"])

    case Files.read_json(cache) do
      {:ok, %{"elixir" => elixir, "general" => general, "sets" => %{"elixir" => elixir_set}}}
      when elixir_set == sets.elixir ->
        {:ok, %{elixir: elixir, general: general}}

      _ ->
        with {:ok, losses} <- measure(ctx, sets, ctx.init_adapter, "before"),
             :ok <- Files.write_json(cache, Map.put(losses, :sets, sets)) do
          {:ok, losses}
        end
    end
  end

  defp measure(ctx, sets, adapter, label) do
    with {:ok, elixir} <- eval_loss(ctx, sets.elixir, adapter, "#{label}-elixir"),
         {:ok, general} <- maybe_eval_loss(ctx, sets.general, adapter, "#{label}-general") do
      {:ok, %{elixir: elixir, general: general}}
    end
  end

  defp maybe_eval_loss(_ctx, nil, _adapter, _label), do: {:ok, nil}
  defp maybe_eval_loss(ctx, dataset, adapter, label), do: eval_loss(ctx, dataset, adapter, label)

  defp eval_loss(ctx, dataset, adapter, label) do
    n = ctx.stage.number

    request =
      Requests.evaluate(
        job_id: ctx.plan.job_id,
        base_model: ctx.plan.config.base_model,
        adapter: adapter,
        dataset: dataset,
        output_path: Path.join([ctx.plan.run_dir, "eval", "stage#{n}-#{label}.json"])
      )

    case ctx.client.evaluate(request, reporter(ctx, "eval-#{label}")) do
      {:ok, final} ->
        case WorkerClient.loss(final) do
          nil ->
            {:error, "Evaluate of #{dataset} gave no loss (metrics: #{inspect(final[:metrics])})"}

          loss ->
            {:ok, loss}
        end

      other ->
        other
    end
  end

  defp train(ctx, sets) do
    dir = Plan.stage_dir(ctx.plan, ctx.stage.number)

    request =
      Requests.train(ctx.stage,
        job_id: ctx.plan.job_id,
        base_model: ctx.plan.config.base_model,
        dataset_dir: ctx.plan.config.dataset_dir,
        output_dir: dir,
        init_adapter: ctx.init_adapter,
        general_eval: sets.general,
        resume: checkpoint?(dir)
      )

    ctx.client.train(request, reporter(ctx, "train"))
  end

  defp adapter_dir(ctx, trained) do
    case trained[:artifact_path] do
      path when is_binary(path) and path != "" -> path
      _ -> Plan.stage_dir(ctx.plan, ctx.stage.number)
    end
  end

  defp metrics(plan, stage, init_adapter, adapter, trained, sets, before, after_, verdict) do
    %{
      run: plan.run,
      stage: stage.number,
      name: stage.name,
      base_model: plan.config.base_model,
      dataset_dir: plan.config.dataset_dir,
      init_adapter: init_adapter,
      adapter: adapter,
      train: Map.take(trained, [:metrics, :step, :total_steps, :elapsed_ms, :message]),
      eval: %{
        elixir: %{dataset: sets.elixir, before: before.elixir, after: after_.elixir},
        general:
          if(sets.general,
            do: %{dataset: sets.general, before: before.general, after: after_.general}
          )
      },
      gate: verdict,
      promoted: verdict.passed,
      finished_at: DateTime.utc_now()
    }
  end

  defp summarize(metrics, metrics_path) do
    gate = metrics["gate"] || %{}

    %{
      stage: metrics["stage"],
      name: metrics["name"],
      adapter: metrics["adapter"],
      passed: gate["passed"] == true,
      reason: gate["reason"],
      metrics_path: metrics_path
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
