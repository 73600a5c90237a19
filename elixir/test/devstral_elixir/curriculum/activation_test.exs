defmodule DevstralElixir.Curriculum.ActivationTest do
  use ExUnit.Case, async: true

  alias DevstralElixir.Curriculum.Activation

  @run_dir "/data/adapters/elixir-20240131-7"

  test "the last promoted stage's adapter, by its registry name, from a job's JSON result" do
    result = %{
      "run" => "elixir-20240131-7",
      "run_dir" => @run_dir,
      "status" => "succeeded",
      "stages" => [
        %{"stage" => 1, "passed" => true, "adapter" => @run_dir <> "/stage1"},
        %{"stage" => 2, "passed" => true, "adapter" => @run_dir <> "/stage2"}
      ],
      "promoted_stage" => 2,
      "promoted_adapter" => @run_dir <> "/stage2"
    }

    assert Activation.promoted(result) == {:ok, "elixir-20240131-7/stage2"}
  end

  test "a fresh result with atom keys, and an adapter directory below the stage's" do
    result = %{run_dir: @run_dir <> "/", promoted_adapter: @run_dir <> "/stage3/final"}
    assert Activation.promoted(result) == {:ok, "elixir-20240131-7/stage3/final"}
  end

  test "no promoted stage is :none" do
    assert Activation.promoted(%{"run_dir" => @run_dir, "promoted_adapter" => nil}) == :none
    assert Activation.promoted(%{"run_dir" => @run_dir, "promoted_adapter" => ""}) == :none
    assert Activation.promoted(%{}) == :none
  end

  test "an adapter outside the run's directory has no registry name" do
    assert {:error, message} =
             Activation.promoted(%{
               "run_dir" => @run_dir,
               "promoted_adapter" => "/elsewhere/stage1"
             })

    assert message =~ "/elsewhere/stage1 is not inside the run's directory #{@run_dir}"

    assert {:error, _} =
             Activation.promoted(%{"run_dir" => @run_dir, "promoted_adapter" => @run_dir})

    assert {:error, message} = Activation.promoted(%{"promoted_adapter" => "/a/stage1"})
    assert message =~ "not the run's directory"
  end

  test "a worker that is not running is a refusal, not a crash" do
    assert Activation.activate_on_worker(:no_such_worker, "run/stage1", 1_000) ==
             {:error, "the model worker is not running"}
  end
end
