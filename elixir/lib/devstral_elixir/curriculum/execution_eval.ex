defmodule DevstralElixir.Curriculum.ExecutionEval do
  @moduledoc """
  The curriculum's execution-based evaluation (what `mix evaluate` measures),
  on when the config's `execution_eval.problems` names a problem set:

    * `baseline/3` evaluates the base model once per run, before stage 1,
      and keeps its numbers in `RUN/baseline.json` (the host's file), so a
      resumed run does not measure it again;
    * `stage/5` evaluates a stage's adapter after training; the worker adds
      the numbers to the stage's `metrics.json` (it stays that file's only
      writer), and they go to the gate with the base model's pass@1 as
      `base_pass_at_1`.

  The worker writes each evaluation's `results.jsonl` and `summary.json` to
  `RUN/base-evaluation/` and `RUN/stageN/evaluation/`.
  """

  alias DevstralElixir.Curriculum.{Files, Plan}
  alias DevstralElixir.Evaluation.Request

  @kept ~w(pass_at_1 pass_at_10 compile_rate problems samples excluded)

  @doc "True when the plan's config asks for execution-based evaluation."
  @spec enabled?(Plan.t()) :: boolean()
  def enabled?(%Plan{config: config}), do: config.execution_eval.problems != nil

  @doc "The base model's numbers path: `RUN/baseline.json`."
  @spec baseline_path(Plan.t()) :: Path.t()
  def baseline_path(%Plan{run_dir: run_dir}), do: Path.join(run_dir, "baseline.json")

  @doc "The base model's recorded numbers, or nil."
  @spec recorded_baseline(Plan.t()) :: map() | nil
  def recorded_baseline(plan) do
    case Files.read_json(baseline_path(plan)) do
      {:ok, baseline} -> baseline
      :error -> nil
    end
  end

  @doc """
  The base model's numbers: recorded ones, else measured now (and recorded);
  `{:ok, nil}` when the evaluation is off.
  """
  @spec baseline(Plan.t(), module(), (map() -> any())) ::
          {:ok, map() | nil} | {:error, String.t()} | {:invalid, String.t()}
  def baseline(%Plan{} = plan, client, report) do
    cond do
      not enabled?(plan) ->
        {:ok, nil}

      recorded = recorded_baseline(plan) ->
        {:ok, recorded}

      true ->
        out = Path.join(plan.run_dir, "base-evaluation")

        with {:ok, metrics} <- evaluate(plan, client, report, "", out, "") do
          baseline = Map.put(metrics, "model", plan.config.base_model)

          case Files.write_json(baseline_path(plan), baseline) do
            :ok -> {:ok, baseline}
            {:error, message} -> {:error, message}
          end
        end
    end
  end

  @doc """
  A stage adapter's numbers (with `base_pass_at_1` from `baseline`) for the
  gate; `{:ok, %{}}` when the evaluation is off.
  """
  @spec stage(Plan.t(), pos_integer(), Path.t(), module(), keyword()) ::
          {:ok, map()} | {:error, String.t()} | {:invalid, String.t()}
  def stage(%Plan{} = plan, number, adapter, client, opts) do
    opts = Keyword.validate!(opts, [:report, :baseline])

    if enabled?(plan) do
      stage_dir = Plan.stage_dir(plan, number)
      out = Path.join(stage_dir, "evaluation")
      metrics_json = Path.join(stage_dir, "metrics.json")

      with {:ok, metrics} <- evaluate(plan, client, opts[:report], adapter, out, metrics_json) do
        {:ok, Map.put(metrics, "base_pass_at_1", (opts[:baseline] || %{})["pass_at_1"])}
      end
    else
      {:ok, %{}}
    end
  end

  defp evaluate(plan, client, report, adapter, out, metrics_json) do
    args =
      plan.config.execution_eval
      |> Map.new(fn {key, value} -> {Atom.to_string(key), value} end)

    request =
      Request.execution!(args,
        model: plan.config.base_model,
        adapter: adapter,
        # The run's job id: cancelling the job reaches this call too.
        job_id: plan.job_id,
        out: out,
        metrics_path: metrics_json
      )

    with {:ok, done} <- client.evaluate(request, report) do
      {:ok, Map.take(done[:metrics] || %{}, @kept)}
    end
  rescue
    error in ArgumentError -> {:invalid, "execution_eval: " <> Exception.message(error)}
  end
end
