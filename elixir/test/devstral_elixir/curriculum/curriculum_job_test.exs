defmodule DevstralElixir.Curriculum.CurriculumJobTest do
  # Runs curriculum jobs through the real queue (Mnesia) with the fake worker
  # client set in the application environment: not async.
  use ExUnit.Case, async: false

  import DevstralElixir.Test.Jobs.QueueHelpers

  alias DevstralElixir.Curriculum.Files
  alias DevstralElixir.Jobs.{Events, Queue}
  alias DevstralElixir.Test.Jobs.{CurriculumFixture, FakeWorkerClient}

  setup do
    previous = Application.fetch_env(:devstral_elixir, :curriculum_client)
    Application.put_env(:devstral_elixir, :curriculum_client, FakeWorkerClient)

    on_exit(fn ->
      case previous do
        {:ok, value} -> Application.put_env(:devstral_elixir, :curriculum_client, value)
        :error -> Application.delete_env(:devstral_elixir, :curriculum_client)
      end
    end)

    dir = tmp_dir("curriculum-job")
    # The real curriculum runners for both job types.
    ctx =
      start_queue(dir,
        runners: %{
          curriculum: DevstralElixir.Curriculum.Runner,
          train_stage: DevstralElixir.Curriculum.StageRunner
        }
      )

    Events.subscribe(:all, ctx.events)
    Map.put(ctx, :dir, dir)
  end

  defp write_config(dir, overrides) do
    path = Path.join(dir, "curriculum.exs")

    File.write!(
      path,
      inspect(CurriculumFixture.write!(dir, overrides),
        limit: :infinity,
        printable_limit: :infinity
      )
    )

    path
  end

  test "a curriculum job runs every stage and records the promoted adapter", ctx do
    config = write_config(ctx.dir, [])
    {:ok, job} = Queue.enqueue(ctx.queue, :curriculum, %{"config" => config, "run" => "q1"})
    assert job.resource == "worker:default"

    done = assert_state(job.id, :succeeded, 10_000)
    run_dir = Path.join([ctx.dir, "adapters", "q1"])
    assert done.result.promoted_adapter == Path.join(run_dir, "stage3")
    assert done.progress.stage == 3
    assert done.progress.stages == 3

    assert_receive {Events, id, {:progress, %{phase: "stage1/train", step: 1}}} when id == job.id
    for n <- 1..3, do: assert(File.regular?(Path.join([run_dir, "stage#{n}", "metrics.json"])))
    assert {:ok, %{"status" => "succeeded"}} = Files.read_json(Path.join(run_dir, "run.json"))
  end

  test "a gate failure fails the job once, with the reason", ctx do
    config = write_config(ctx.dir, gate: [min_elixir_improvement_pct: 50.0])
    {:ok, job} = Queue.enqueue(ctx.queue, :curriculum, %{"config" => config, "run" => "q2"})

    failed = assert_state(job.id, :failed, 10_000)
    assert failed.attempts == 1

    assert failed.error =~
             "stage 1 gate failed: Elixir eval loss improved by 10.00%, less than the required 50.00%"
  end

  test "invalid configs are rejected at enqueue, naming the field", ctx do
    config = write_config(ctx.dir, stages: [[epochs: 1, learning_rate: "fast"]])

    assert {:error, message} = Queue.enqueue(ctx.queue, :curriculum, %{"config" => config})
    assert message =~ ~s(stages[1].learning_rate must be a number, got "fast")

    # The whole pre-flight check runs at enqueue too (ranges are the worker's; see the e2e test).
    config = write_config(ctx.dir, stages: [[epochs: 1, gate: [min_elixir_improvement_pct: 100]]])
    assert {:error, message} = Queue.enqueue(ctx.queue, :curriculum, %{"config" => config})
    assert message =~ "stages[1].gate.min_elixir_improvement_pct is 100"

    assert {:error, "args has an unknown key" <> _} =
             Queue.enqueue(ctx.queue, :curriculum, %{"bogus" => 1})

    assert Queue.list(ctx.queue) == []
  end

  test "a train_stage job runs one stage", ctx do
    config = write_config(ctx.dir, [])

    {:ok, job} =
      Queue.enqueue(ctx.queue, :train_stage, %{"config" => config, "run" => "q3", "stage" => 1})

    done = assert_state(job.id, :succeeded, 10_000)
    assert done.result.stage == 1
    assert done.result.passed
    refute File.exists?(Path.join([ctx.dir, "adapters", "q3", "stage2"]))
  end
end
