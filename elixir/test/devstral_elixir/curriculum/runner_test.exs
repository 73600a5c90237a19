defmodule DevstralElixir.Curriculum.RunnerTest do
  # The runner runs in the test process against a fake worker client, so no
  # Mnesia and no global state: async.
  use ExUnit.Case, async: true

  alias DevstralElixir.Curriculum.{Config, Files, Runner, StageRunner}
  alias DevstralElixir.Proto.TrainRequest
  alias DevstralElixir.Test.Jobs.{CurriculumFixture, FakeWorkerClient}

  setup do
    root = Path.join(System.tmp_dir!(), "devstral-runner-#{System.unique_integer([:positive])}")
    on_exit(fn -> File.rm_rf!(root) end)
    %{root: root}
  end

  defp plan(root, overrides \\ []), do: CurriculumFixture.plan!(root, overrides)

  defp execute(plan) do
    test = self()

    Runner.execute(plan,
      client: FakeWorkerClient,
      report: fn event -> send(test, {:report, event}) end
    )
  end

  defp trained_stages do
    for_messages(fn
      {:fake_worker, :train, %TrainRequest{stage: n}} -> n
      _ -> nil
    end)
  end

  defp for_messages(fun, acc \\ []) do
    receive do
      message ->
        case fun.(message) do
          nil -> for_messages(fun, acc)
          value -> for_messages(fun, [value | acc])
        end
    after
      0 -> Enum.reverse(acc)
    end
  end

  test "all three stages pass: chained adapters, the worker's numbers gated, run.json", %{
    root: root
  } do
    plan = plan(root)
    assert {:ok, result} = execute(plan)

    stage_dir = &Path.join(plan.run_dir, "stage#{&1}")
    assert result.status == "succeeded"
    assert result.promoted_stage == 3
    assert result.promoted_adapter == stage_dir.(3)

    # Stage N starts from stage N-1's adapter (as the worker reported it); stage 1 from the base model.
    assert_received {:fake_worker, :train, %TrainRequest{stage: 1, init_adapter: ""} = t1}
    assert_received {:fake_worker, :train, %TrainRequest{stage: 2} = t2}
    assert_received {:fake_worker, :train, %TrainRequest{stage: 3} = t3}
    assert t2.init_adapter == stage_dir.(1)
    assert t3.init_adapter == stage_dir.(2)
    assert t1.output_dir == stage_dir.(1)
    assert t1.base_model == plan.config.base_model
    assert t1.dataset_dir == plan.config.dataset_dir
    assert t1.eval_path == Path.join(plan.config.dataset_dir, "stage1/eval.jsonl")
    assert t1.general_eval_path == ""
    assert t2.config.regularizer == "l2"
    assert t3.config.max_steps == 4
    # The host measures nothing itself.
    refute_received {:fake_worker, :evaluate, _}

    {:ok, run} = Files.read_json(Path.join(plan.run_dir, "run.json"))
    assert run["status"] == "succeeded"
    assert Enum.map(run["stages"], & &1["stage"]) == [1, 2, 3]
    assert run["promoted_adapter"] == stage_dir.(3)

    for %{"stage" => n} = stage <- run["stages"] do
      assert stage["passed"] == true
      assert stage["adapter"] == stage_dir.(n)
      assert_in_delta stage["gate"]["elixir_improvement_pct"], 10.0, 1.0e-3
      assert_in_delta stage["gate"]["general_regression_pct"], 1.0, 1.0e-3
    end

    # Progress carries the stage, for the CLI's bar; the verdict goes into the job.
    assert_received {:report,
                     %{phase: "stage2/train", stage: 2, stages: 3, kind: "PROGRESS", step: 1}}

    assert_received {:report,
                     %{
                       phase: "stage3/gate",
                       message: "stage 3 gate passed",
                       gate: %{passed: true}
                     }}
  end

  test "metrics.json has one writer: after a stage it is exactly what the worker wrote", %{
    root: root
  } do
    plan = plan(root)
    path = Path.join([plan.run_dir, "stage1", "metrics.json"])

    Process.put(:fake_worker, %{
      train: fn
        %{stage: 1} = request ->
          File.mkdir_p!(request.output_dir)
          File.write!(path, ~s({"written_by": "worker"}\n))

          {:ok,
           %{
             kind: "COMPLETED",
             artifact_path: request.output_dir,
             metrics: %{
               "eval_loss_before" => 3.0,
               "eval_loss" => 2.0,
               "eval_loss_change_pct" => -33.3
             }
           }}

        _ ->
          nil
      end
    })

    assert {:ok, _} = execute(plan)
    assert File.read!(path) == ~s({"written_by": "worker"}\n)

    # Without a general-code measure only the Elixir rule applies; the reported change is used as is.
    {:ok, run} = Files.read_json(Path.join(plan.run_dir, "run.json"))
    [stage1 | _] = run["stages"]
    assert stage1["gate"]["general_checked"] == false
    assert stage1["gate"]["elixir_improvement_pct"] == 33.3
  end

  test "a failed gate stops the run: reason recorded, adapter kept, not promoted", %{root: root} do
    plan = plan(root)

    Process.put(:fake_worker, %{
      losses: fn
        "stage2", :elixir -> 2.69
        label, kind -> FakeWorkerClient.default_loss(label, kind)
      end
    })

    assert {:discard, reason} = execute(plan)

    assert reason =~
             "stage 2 gate failed: Elixir eval loss improved by 0.37%, less than the required 1.00%"

    assert reason =~ "kept, not promoted"
    assert trained_stages() == [1, 2]

    stage2 = Path.join(plan.run_dir, "stage2")
    assert File.regular?(Path.join(stage2, "adapter_config.json"))

    {:ok, run} = Files.read_json(Path.join(plan.run_dir, "run.json"))
    assert [_, %{"stage" => 2, "passed" => false} = judged] = run["stages"]
    assert judged["gate"]["reason"] =~ "Elixir eval loss improved by 0.37%"
    assert run["status"] == "stopped"
    assert run["reason"] == reason
    assert run["promoted_stage"] == 1

    # Running the job again does not retrain or re-judge: the verdict stands.
    assert {:discard, ^reason} = execute(plan)
    assert trained_stages() == []
  end

  test "general-code regression beyond the limit fails the gate", %{root: root} do
    plan = plan(root)

    Process.put(:fake_worker, %{
      losses: fn
        "stage1", :general -> 2.2
        label, kind -> FakeWorkerClient.default_loss(label, kind)
      end
    })

    assert {:discard, reason} = execute(plan)
    assert reason =~ "stage 1 gate failed: general-code eval loss worsened by 10.00%"
  end

  test "a retry after a crash skips finished stages and resumes from the checkpoint", %{
    root: root
  } do
    plan = plan(root)

    Process.put(:fake_worker, %{
      train: fn
        %{stage: 2} ->
          if Process.put(:crashed, true),
            do: nil,
            else: {:error, "Train failed: the worker exited (killed)"}

        _ ->
          nil
      end
    })

    assert {:error, "stage 2: Train failed: the worker exited (killed)"} = execute(plan)
    assert trained_stages() == [1, 2]
    {:ok, run} = Files.read_json(Path.join(plan.run_dir, "run.json"))
    assert run["status"] == "running"

    assert {:ok, result} = execute(plan)
    assert result.promoted_stage == 3
    # The worker resumes from its own checkpoints: the host always asks it to.
    assert_received {:fake_worker, :train, %TrainRequest{stage: 2, resume: true} = retry}
    assert retry.init_adapter == Path.join(plan.run_dir, "stage1")
    refute_received {:fake_worker, :train, %TrainRequest{stage: 1}}
  end

  test "problems no retry can fix are discarded", %{root: root} do
    plan = plan(root)
    Process.put(:fake_worker, %{train: fn _ -> {:invalid, "Train rejected the request: bad"} end})
    assert {:discard, "stage 1: Train rejected the request: bad"} = execute(plan)
  end

  test "the train_stage runner: one stage, from the previous stage's adapter of the run", %{
    root: root
  } do
    plan = plan(root)
    {:ok, stage1} = Config.stage(plan.config, 1)
    {:ok, stage2} = Config.stage(plan.config, 2)
    report = fn _ -> :ok end

    assert {:ok, %{stage: 1, passed: true}} =
             StageRunner.execute(plan, stage1, FakeWorkerClient, report)

    assert_received {:fake_worker, :train, %TrainRequest{stage: 1, init_adapter: ""}}

    assert {:ok, %{stage: 2, run: "r1"}} =
             StageRunner.execute(plan, stage2, FakeWorkerClient, report)

    assert_received {:fake_worker, :train, %TrainRequest{stage: 2} = t2}
    assert t2.init_adapter == Path.join(plan.run_dir, "stage1")

    # An explicit init_adapter wins; a finished stage is not run again.
    r1_stage1 = Path.join(plan.run_dir, "stage1")

    other = %{
      plan
      | run: "r2",
        run_dir: Path.join(plan.config.adapters_dir, "r2"),
        init_adapter: r1_stage1
    }

    assert {:ok, _} = StageRunner.execute(other, stage2, FakeWorkerClient, report)
    assert_received {:fake_worker, :train, %TrainRequest{stage: 2, init_adapter: ^r1_stage1}}
    assert {:ok, _} = StageRunner.execute(other, stage2, FakeWorkerClient, report)
    refute_received {:fake_worker, :train, _}
  end

  describe "execution-based evaluation" do
    @execution [problems: "humaneval-elixir", limit: 5]

    test "the base model first, then every stage; numbers in metrics.json, the gate and REPORT.md",
         %{root: root} do
      plan =
        plan(root,
          execution_eval: @execution,
          gate: [
            min_elixir_improvement_pct: 1.0,
            max_general_regression_pct: 5.0,
            min_pass_at_1_gain: 0.02,
            min_compile_rate: 0.9
          ]
        )

      assert {:ok, %{status: "succeeded"}} = execute(plan)

      evaluations =
        for_messages(fn
          {:fake_worker, :evaluate, request} -> request
          _ -> nil
        end)

      assert Enum.map(evaluations, & &1.adapter) ==
               ["" | for(n <- 1..3, do: Path.join(plan.run_dir, "stage#{n}"))]

      [base | stages] = evaluations
      assert base.benchmarks == ["humaneval-elixir"] and base.max_problems == 5
      assert base.model == plan.config.base_model and base.metrics_path == ""
      assert base.output_dir == Path.join(plan.run_dir, "base-evaluation")
      assert hd(stages).metrics_path == Path.join([plan.run_dir, "stage1", "metrics.json"])

      {:ok, baseline} = Files.read_json(Path.join(plan.run_dir, "baseline.json"))
      assert baseline["pass_at_1"] == 0.1

      {:ok, metrics} = Files.read_json(Path.join([plan.run_dir, "stage2", "metrics.json"]))
      assert metrics["evaluation"]["pass_at_1"] == 0.2
      assert metrics["eval_loss"] == 2.43

      {:ok, run} = Files.read_json(Path.join(plan.run_dir, "run.json"))
      [s1 | _] = run["stages"]
      assert s1["reported"]["pass_at_1"] == 0.15 and s1["reported"]["base_pass_at_1"] == 0.1
      assert s1["gate"]["pass_at_1"] == 0.15

      report = File.read!(Path.join(plan.run_dir, "REPORT.md"))
      assert report =~ "| base model | 0.100 | 0.950 | 3.0000 | 2.0000 |  |"
      assert report =~ "| stage 3 (stage 3) | 0.250 | 0.950 | 2.1870 | 2.0606 | passed |"
      svg = File.read!(Path.join(plan.run_dir, "report.svg"))
      assert svg =~ "<svg" and svg =~ "stage 3 (stage 3) pass_at_1: 0.250"

      # A resumed run measures nothing again: the baseline and the verdicts are recorded.
      assert {:ok, _} = execute(plan)
      refute_received {:fake_worker, :evaluate, _}
    end

    test "a stage that does not beat the base model's pass@1 stops the run", %{root: root} do
      plan =
        plan(root,
          execution_eval: @execution,
          gate: [
            min_elixir_improvement_pct: 1.0,
            max_general_regression_pct: 5.0,
            min_pass_at_1_gain: 0.02
          ]
        )

      Process.put(:fake_worker, %{
        pass_at_1: fn
          "base" -> 0.3
          _ -> 0.31
        end
      })

      assert {:discard, reason} = execute(plan)
      assert reason =~ "stage 1 gate failed: pass@1 0.310 is below the base model's 0.300 + 0.020"
      assert File.read!(Path.join(plan.run_dir, "REPORT.md")) =~ "failed: pass@1 0.310"
    end

    test "a problem set that does not exist fails the preflight", %{root: root} do
      plan = plan(root, execution_eval: [problems: Path.join(root, "missing.jsonl")])
      assert {:discard, reason} = execute(plan)
      assert reason =~ "execution_eval.problems: "
      assert reason =~ "missing.jsonl\" is neither a shipped set"
      refute_received {:fake_worker, :evaluate, _}
    end

    test "a gate on pass@1 without execution_eval is a config error", %{root: root} do
      assert_raise MatchError, fn ->
        plan(root,
          gate: [
            min_elixir_improvement_pct: 1.0,
            max_general_regression_pct: 5.0,
            min_pass_at_1_gain: 0.02
          ]
        )
      end

      {:error, message} =
        Config.from_keyword(
          CurriculumFixture.write!(root,
            gate: [
              min_elixir_improvement_pct: 1.0,
              max_general_regression_pct: 5.0,
              min_compile_rate: 0.9
            ]
          ),
          [],
          data_dir: root
        )

      assert message ==
               "stages[1].gate.min_compile_rate needs execution_eval.problems (e.g. \"humaneval-elixir\") to measure it"
    end
  end
end
