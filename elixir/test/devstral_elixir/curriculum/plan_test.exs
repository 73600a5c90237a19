defmodule DevstralElixir.Curriculum.PlanTest do
  use ExUnit.Case, async: true

  alias DevstralElixir.Curriculum.Plan
  alias DevstralElixir.Jobs.Job

  @data_dir "/srv/data"

  defp from(args, opts \\ []), do: Plan.from_args(args, Keyword.put(opts, :data_dir, @data_dir))

  test "the default config, with overrides from args (string or atom keys)" do
    assert {:ok, plan} = from(%{"max_steps" => 3, dataset_dir: "/ds", run: "my-run.1"})
    assert plan.run == "my-run.1"
    assert plan.run_dir == "/srv/data/adapters/my-run.1"
    assert plan.config.dataset_dir == "/ds"
    assert Enum.all?(plan.config.stages, &(&1.max_steps == 3))
    assert Plan.stage_dir(plan, 2) == "/srv/data/adapters/my-run.1/stage2"
  end

  test "the default run name is stable for a job: name, enqueue time, id" do
    job = %Job{id: 42, inserted_at: ~U[2026-11-22 10:11:12Z]}
    assert {:ok, plan} = from(%{}, job: job)
    assert plan.run == "elixir-20261122-101112-job42"
    assert plan.job_id == "job-42"
  end

  test "bad args are rejected with the key named" do
    assert {:error, "args has an unknown key \"stage\"" <> _} = from(%{"stage" => 1})

    assert {:error, "args.max_steps must be a positive integer, got -1"} =
             from(%{"max_steps" => -1})

    assert {:error, "args.config must be a non-empty string, got 5"} = from(%{"config" => 5})
    assert {:error, "args.run must be 1 to 100 letters" <> _} = from(%{"run" => "../../etc"})
    assert {:error, "args.run must be 1 to 100 letters" <> _} = from(%{"run" => ".hidden"})
  end

  test "train-stage args: the stage is required and must exist" do
    assert {:ok, %Plan{stage: 2, init_adapter: "/a"}} =
             from(%{"stage" => 2, "init_adapter" => "/a"}, stage?: true)

    assert {:error, "args.stage is required (1..3)"} = from(%{}, stage?: true)
    assert {:error, "stage must be one of 1..3, got 4"} = from(%{"stage" => 4}, stage?: true)

    assert {:error, "args.stage must be an integer, got \"2\""} =
             from(%{"stage" => "2"}, stage?: true)
  end
end
