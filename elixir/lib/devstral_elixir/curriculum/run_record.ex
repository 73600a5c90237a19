defmodule DevstralElixir.Curriculum.RunRecord do
  @moduledoc """
  The host's own record of a curriculum run, `adapters_dir/RUN/run.json`
  (written atomically): the run's status and, per stage, what the worker
  reported (the adapter directory and the numbers the gate used) and the
  host's gate verdict.

  It is how a retried or resumed job knows which stages are finished, and
  where their adapters are, without reading the worker's files: the stage
  directories (adapter, checkpoints, `metrics.json`) belong to the worker.
  """

  alias DevstralElixir.Curriculum.{Files, Plan}

  @typedoc "One judged stage, as recorded (atom keys when fresh, string keys when read back)."
  @type stage :: map()

  @doc "The path of the run's record."
  @spec path(Plan.t()) :: Path.t()
  def path(%Plan{run_dir: run_dir}), do: Path.join(run_dir, "run.json")

  @doc "The judged stages recorded so far, in stage order (string keys)."
  @spec stages(Plan.t()) :: [map()]
  def stages(%Plan{} = plan) do
    case Files.read_json(path(plan)) do
      {:ok, %{"stages" => stages}} when is_list(stages) ->
        Enum.filter(stages, &(is_map(&1) and is_boolean(&1["passed"])))

      _ ->
        []
    end
  end

  @doc "The recorded verdict of stage `number`, or nil when it has none yet."
  @spec stage(Plan.t(), pos_integer()) :: map() | nil
  def stage(%Plan{} = plan, number), do: Enum.find(stages(plan), &(&1["stage"] == number))

  @doc """
  Records `status` (and `reason`) with `judged` stages merged over those
  already recorded (a stage's newer verdict replaces an older one).
  """
  @spec write(Plan.t(), String.t(), [stage()], String.t() | nil) :: :ok | {:error, String.t()}
  def write(%Plan{} = plan, status, judged, reason) do
    Files.write_json(
      path(plan),
      summary(plan, status, judged, reason) |> Map.put(:updated_at, DateTime.utc_now())
    )
  end

  @doc "The run's summary (what `write/4` records, and a job's result)."
  @spec summary(Plan.t(), String.t(), [stage()], String.t() | nil) :: map()
  def summary(%Plan{} = plan, status, judged, reason) do
    stages = merge(stages(plan), judged)
    promoted = stages |> Enum.filter(&get(&1, :passed)) |> List.last()

    %{
      run: plan.run,
      run_dir: plan.run_dir,
      status: status,
      reason: reason,
      config: plan.config.path,
      base_model: plan.config.base_model,
      dataset_dir: plan.config.dataset_dir,
      stages: stages,
      promoted_stage: promoted && get(promoted, :stage),
      promoted_adapter: promoted && get(promoted, :adapter)
    }
  end

  @doc "A field of a recorded stage, whether its keys are atoms or strings."
  @spec get(stage(), atom()) :: term()
  def get(stage, key), do: Map.get(stage, key, Map.get(stage, Atom.to_string(key)))

  defp merge(recorded, judged) do
    numbers = MapSet.new(judged, &get(&1, :stage))

    (Enum.reject(recorded, &MapSet.member?(numbers, get(&1, :stage))) ++ judged)
    |> Enum.sort_by(&get(&1, :stage))
  end
end
