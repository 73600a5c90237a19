defmodule DevstralElixir.Jobs.ProgressBarTest do
  use ExUnit.Case, async: true

  alias DevstralElixir.Jobs.ProgressBar

  test "a curriculum job counts finished stages" do
    job = %{
      "state" => "running",
      "attempts" => 1,
      "max_attempts" => 3,
      "progress" => %{
        "stage" => 2,
        "stages" => 3,
        "phase" => "stage2/train",
        "step" => 40,
        "total_steps" => 80,
        "eta_ms" => 185_000,
        "metrics" => %{"loss" => 1.23456}
      }
    }

    assert ProgressBar.render(job, 20) ==
             "[##########..........]   50%  stage 2/3 train  step 40/80  loss 1.2346  eta 3m05s  running (attempt 1/3)"
  end

  test "a stage's evaluations do not move the bar back and forth" do
    at = fn phase, step, total ->
      ProgressBar.fraction(%{}, %{
        "stage" => 2,
        "stages" => 4,
        "phase" => phase,
        "step" => step,
        "total_steps" => total
      })
    end

    assert at.("stage2/eval-before-elixir", 1, 1) == 0.25
    assert at.("stage2/train", 5, 10) == 0.375
    assert at.("stage2/eval-after-general", 0, 1) == 0.5
    assert at.("stage2/gate", 0, 0) == 0.5
  end

  test "queued, single-stage and finished jobs" do
    assert ProgressBar.render(%{"state" => "queued", "attempts" => 0, "progress" => nil}, 4) ==
             "[....]    0%  queued"

    assert ProgressBar.fraction(%{}, %{"step" => 3, "total_steps" => 4}) == 0.75
    assert ProgressBar.fraction(%{"state" => "succeeded"}, %{}) == 1.0
    assert ProgressBar.fraction(%{}, %{"step" => 9, "total_steps" => 4}) == 1.0
  end

  test "durations" do
    assert ProgressBar.duration(42_000) == "42s"
    assert ProgressBar.duration(185_000) == "3m05s"
    assert ProgressBar.duration(3_720_000) == "1h02m"
  end
end
