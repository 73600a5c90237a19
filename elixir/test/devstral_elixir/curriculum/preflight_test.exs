defmodule DevstralElixir.Curriculum.PreflightTest do
  # The runner runs in the test process against a stand-in worker client, so
  # no Mnesia and no global state: async. The real worker's side of the check
  # (Train with validate_only) is covered end to end in tests/test_curriculum_e2e.py.
  use ExUnit.Case, async: true

  alias DevstralElixir.Curriculum.{Config, Preflight, RunRecord, Runner, StageRunner}
  alias DevstralElixir.Proto.TrainRequest
  alias DevstralElixir.Test.Jobs.CurriculumFixture

  defmodule CheckingClient do
    @moduledoc """
    A worker client that answers `validate_train/1` from the calling process's
    `:validate` script (`fn request -> :ok | {:invalid, _} | {:error, _} end`)
    and tells the test about every call; training or evaluating is a test failure.
    """

    @doc false
    def validate_train(%TrainRequest{} = request) do
      send(self(), {:validate_train, request})
      Process.get(:validate).(request)
    end

    @doc false
    def train(request, _report), do: raise("trained #{request.stage} despite a failed check")

    @doc false
    def evaluate(request, _report),
      do: raise("evaluated #{inspect(request)} despite a failed check")

    @doc false
    def cancel(_job_id), do: :ok
  end

  setup do
    root =
      Path.join(System.tmp_dir!(), "devstral-preflight-#{System.unique_integer([:positive])}")

    on_exit(fn -> File.rm_rf!(root) end)
    Process.put(:validate, fn _request -> :ok end)
    %{root: root}
  end

  defp plan(root, overrides \\ []), do: CurriculumFixture.plan!(root, overrides)

  defp validations do
    receive do
      {:validate_train, request} -> [request | validations()]
    after
      0 -> []
    end
  end

  test "a plan with several problems fails before any training, naming every one", %{root: root} do
    stages = [
      [epochs: 1, learning_rate: 2.0e-4],
      [epochs: 1, learning_rate: 1.0e-4, gate: [min_elixir_improvement_pct: 150.0]],
      [max_steps: 4, learning_rate: 5.0e-5]
    ]

    plan = plan(root, stages: stages)
    missing = plan.config.base_model
    stage3_eval = Path.join(plan.config.dataset_dir, "stage3/eval.jsonl")

    Process.put(:validate, fn
      # The worker lists its problems one a line.
      %TrainRequest{stage: 1} ->
        {:invalid, "base_model: no model at '#{missing}'\nconfig.max_seq_length must be >= 8"}

      # The eval set is the worker's to read (sent as eval_path).
      %TrainRequest{stage: 3, eval_path: ^stage3_eval} ->
        {:invalid,
         "base_model: no model at '#{missing}'\neval_path: #{stage3_eval} has no Elixir rows"}

      _request ->
        {:invalid, "base_model: no model at '#{missing}'"}
    end)

    assert {:discard, message} = Runner.execute(plan, client: CheckingClient)

    assert message =~ "the plan cannot run (4 problems); nothing was trained:"

    assert message =~ "stages[3] (worker): eval_path: #{stage3_eval} has no Elixir rows"

    assert message =~ "stages[2].gate.min_elixir_improvement_pct is 150.0"
    # The worker's message for every stage is listed once, naming the stages.
    assert message =~ "stages[1,2,3] (worker): base_model: no model at '#{missing}'"
    assert message =~ "stages[1] (worker): config.max_seq_length must be >= 8"
    assert length(String.split(message, "\n  - ")) == 5
    assert message =~ "(4 problems)"
    # Nothing was written: not even run.json.
    refute File.exists?(plan.run_dir)

    # The worker was asked about each stage, validate-only, the first without an adapter.
    requests = validations()
    assert Enum.map(requests, & &1.stage) == [1, 2, 3]
    assert Enum.all?(requests, & &1.validate_only)
    assert Enum.all?(requests, &(&1.init_adapter == ""))
  end

  test "an output directory that cannot be created is a problem", %{root: root} do
    File.mkdir_p!(root)
    blocker = Path.join(root, "a-file")
    File.write!(blocker, "")
    plan = plan(root, adapters_dir: Path.join(blocker, "adapters"))

    assert {:invalid, message} = Preflight.check(plan, plan.config.stages, CheckingClient)
    assert message =~ "nothing was trained: output directory: #{blocker} is not a directory"
  end

  test "a worker that cannot be asked is a retryable error, not a verdict", %{root: root} do
    plan = plan(root)

    down = fn _request -> {:error, "Train failed: the worker is not running"} end
    Process.put(:validate, down)

    assert {:error,
            "the worker could not check the plan: Train failed: the worker is not running"} =
             Runner.execute(plan, client: CheckingClient)

    # Problems the host found are a verdict even so, and say what went unchecked.
    plan = plan(root, stages: [[epochs: 1, gate: [min_elixir_improvement_pct: 100]]])
    assert {:discard, message} = Runner.execute(plan, client: CheckingClient)
    assert message =~ "(2 problems)"
    assert message =~ "stages[1].gate.min_elixir_improvement_pct is 100"

    assert message =~
             "the worker could not check the plan: Train failed: the worker is not running"
  end

  test "stages that already have a verdict are not checked again", %{root: root} do
    plan = plan(root)
    :ok = RunRecord.write(plan, "running", [%{stage: 1, passed: true, adapter: "/a"}], nil)

    assert :ok = Preflight.check(plan, plan.config.stages, CheckingClient)
    assert Enum.map(validations(), & &1.stage) == [2, 3]
  end

  test "the train_stage runner checks its one stage, with the adapter it starts from", %{
    root: root
  } do
    plan = plan(root)
    adapter = Path.join(root, "given-adapter")
    Process.put(:validate, fn _ -> {:invalid, "eval_path: x has no Elixir rows"} end)
    plan = %{plan | stage: 2, init_adapter: adapter}
    {:ok, stage2} = Config.stage(plan.config, 2)

    assert {:discard, message} =
             StageRunner.execute(plan, stage2, CheckingClient, fn _ -> :ok end)

    assert message =~ "nothing was trained: stages[2] (worker): eval_path: x has no Elixir rows"
    assert [%TrainRequest{stage: 2, init_adapter: ^adapter}] = validations()
  end
end
