defmodule DevstralElixir.Curriculum.Preflight do
  @moduledoc """
  Checks a whole plan before any training, so a plan that cannot finish fails
  in seconds with one message listing every problem, instead of failing at
  stage 3 after hours of stages 1 and 2.

  What is checked, for every stage that will run (a stage that the run's
  record already holds a verdict for is skipped, as the run skips it):

    * the output directory: the run directory can be created and written;
    * the gate: it can pass at all (a loss cannot fall by 100% or more);
    * `execution_eval`: its problem set is a shipped name or an existing file;
    * everything the worker owns, so the worker is asked (`Train` with
      `validate_only`) rather than the host guessing: the base model, the
      dataset, every training setting (with the worker's field-level
      messages), and the eval sets (`eval_set` exists and holds Elixir rows
      by the worker's own row definition; `general_eval` exists). A message
      the worker gives for several stages (a missing base model) is listed
      once, naming those stages.

  The same check runs twice: when the job is enqueued (`at_enqueue/3`, so
  `POST /api/jobs` answers 400 at once, naming every problem, when the worker
  can be asked within 15 s) and again when the job starts (the worker may
  not have been up at enqueue, and files change).

  The config file's own shape (unknown keys, wire types) was checked when it
  was loaded (`DevstralElixir.Curriculum.Config`).
  """

  alias DevstralElixir.Curriculum.{Plan, TrainAndGate, WorkerClient}
  alias DevstralElixir.Curriculum.Config.Stage

  @doc """
  Checks `stages` of `plan`. `client` is the `WorkerClient` module;
  `init_adapter` the adapter the first stage starts from (nil: the base
  model; later stages start from adapters that do not exist yet, so the
  worker is asked without one).

  `{:invalid, message}` lists every problem; `{:error, message}` means the
  worker could not be asked and the host found nothing wrong (retrying may
  help).
  """
  @spec check(Plan.t(), [Stage.t()], module(), Path.t() | nil) ::
          :ok | {:invalid, String.t()} | {:error, String.t()}
  def check(%Plan{} = plan, stages, client, init_adapter \\ nil) do
    pending = Enum.reject(stages, &TrainAndGate.done?(plan, &1))

    host_problems =
      output_dir_problems(plan) ++
        execution_problems(plan) ++ Enum.flat_map(pending, &stage_problems(plan, &1))

    case worker_problems(plan, pending, client, init_adapter) do
      # Problems the host found already doom the plan: no retry for them.
      {:error, message} when host_problems != [] ->
        {:invalid, describe(host_problems ++ [message])}

      {:error, message} ->
        {:error, message}

      {:ok, worker_problems} ->
        case host_problems ++ worker_problems do
          [] -> :ok
          problems -> {:invalid, describe(problems)}
        end
    end
  end

  @enqueue_budget_ms 15_000

  @doc """
  The check at enqueue (a runner's `validate_args/1`): `{:error, message}`
  for a plan that cannot run, else `:ok`. The worker is asked through the
  configured client; when it cannot answer within
  #{div(@enqueue_budget_ms, 1000)} s (still loading, or down), the job is
  accepted and its own check at start decides, so enqueueing never hangs.
  """
  @spec at_enqueue(Plan.t(), [Stage.t()], Path.t() | nil) :: :ok | {:error, String.t()}
  def at_enqueue(%Plan{} = plan, stages, init_adapter \\ nil) do
    client = Application.get_env(:devstral_elixir, :curriculum_client, WorkerClient)
    # A raise in the check must not take the enqueuing process down with it.
    task =
      Task.async(fn ->
        try do
          check(plan, stages, client, init_adapter)
        rescue
          exception -> {:error, Exception.message(exception)}
        end
      end)

    case Task.yield(task, @enqueue_budget_ms) || Task.shutdown(task, :brutal_kill) do
      {:ok, {:invalid, message}} -> {:error, message}
      _ok_or_unknown -> :ok
    end
  end

  defp describe([problem]), do: "the plan cannot run; nothing was trained: #{problem}"

  defp describe(problems) do
    "the plan cannot run (#{length(problems)} problems); nothing was trained:\n" <>
      Enum.map_join(problems, "\n", &"  - #{&1}")
  end

  # The execution-based evaluation's problem set (the worker checks its rows).
  defp execution_problems(plan) do
    case plan.config.execution_eval.problems do
      nil ->
        []

      problems ->
        try do
          _ = DevstralElixir.Evaluation.Request.problems!(problems)
          []
        rescue
          error in ArgumentError -> ["execution_eval.#{Exception.message(error)}"]
        end
    end
  end

  # The output directory

  defp output_dir_problems(plan) do
    run_dir = plan.run_dir
    existing = nearest_existing(run_dir)

    cond do
      not File.dir?(existing) ->
        ["output directory: #{existing} is not a directory (the run goes to #{run_dir})"]

      not writable?(existing) ->
        ["output directory: #{existing} is not writable (the run goes to #{run_dir})"]

      true ->
        []
    end
  end

  defp nearest_existing(path) do
    if File.exists?(path) or Path.dirname(path) == path,
      do: path,
      else: nearest_existing(Path.dirname(path))
  end

  defp writable?(path) do
    case File.stat(path) do
      {:ok, %File.Stat{type: :directory, access: access}} -> access in [:read_write, :write]
      _ -> false
    end
  end

  # The gate

  defp stage_problems(_plan, stage), do: gate_problems(stage)

  defp gate_problems(%Stage{number: number, gate: gate}) do
    if gate.min_elixir_improvement_pct >= 100 do
      [
        "stages[#{number}].gate.min_elixir_improvement_pct is #{gate.min_elixir_improvement_pct}: " <>
          "a loss cannot fall by 100% or more, so this gate can never pass"
      ]
    else
      []
    end
  end

  # The worker's checks

  defp worker_problems(plan, stages, client, init_adapter) do
    # function_exported?/3 does not load a module: without this, a client not
    # yet loaded (the first check after boot) would skip the worker's checks.
    Code.ensure_loaded(client)

    if function_exported?(client, :validate_train, 1) do
      stages
      |> Enum.reduce_while({:ok, []}, fn stage, {:ok, acc} ->
        request = request(plan, stage, if(stage == hd(stages), do: init_adapter))

        case client.validate_train(request) do
          :ok ->
            {:cont, {:ok, acc}}

          {:invalid, message} ->
            {:cont, {:ok, acc ++ problems_of(message, stage.number)}}

          {:error, message} ->
            {:halt, {:error, "the worker could not check the plan: #{message}"}}
        end
      end)
      |> case do
        {:ok, found} -> {:ok, group_by_message(found)}
        error -> error
      end
    else
      {:ok, []}
    end
  end

  defp request(plan, stage, init_adapter),
    do: TrainAndGate.request(plan, stage, init_adapter, validate_only: true)

  # The worker lists its problems one a line.
  defp problems_of(message, number) do
    for line <- String.split(message, "\n", trim: true), do: {line, number}
  end

  defp group_by_message(found) do
    found
    |> Enum.group_by(&elem(&1, 0), &elem(&1, 1))
    |> Enum.sort_by(fn {_message, numbers} -> hd(numbers) end)
    |> Enum.map(fn {message, numbers} ->
      "stages[#{Enum.join(numbers, ",")}] (worker): #{message}"
    end)
  end
end
