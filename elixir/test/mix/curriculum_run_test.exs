defmodule Mix.Tasks.Curriculum.RunTest do
  use ExUnit.Case, async: false

  alias Mix.Tasks.Curriculum.Run

  setup do
    shell = Mix.shell()
    Mix.shell(Mix.Shell.Process)
    on_exit(fn -> Mix.shell(shell) end)
  end

  test "--activate becomes the on-success hook; without it there is none" do
    flags = Run.options!(~w(--activate --max-steps 2 --run r1))
    assert flags[:max_steps] == 2
    assert flags[:run] == "r1"
    refute Keyword.has_key?(flags, :activate)
    assert is_function(flags[:on_success], 2)

    flags = Run.options!(~w(--max-steps 2))
    refute Keyword.has_key?(flags, :on_success)
    refute Keyword.has_key?(Run.options!(~w(--no-activate)), :on_success)
  end

  test "--activate cannot go with --detach; bad flags still name themselves" do
    assert_raise Mix.Error, ~r/--activate waits for the run to succeed.*--detach/, fn ->
      Run.options!(~w(--activate --detach))
    end

    assert_raise Mix.Error, ~r/invalid value "x" for --max-steps/, fn ->
      Run.options!(~w(--activate --max-steps x))
    end
  end

  test "no promoted stage: says so and activates nothing" do
    job = %{
      "id" => 7,
      "state" => "succeeded",
      "result" => %{"run_dir" => "/d/adapters/r1", "stages" => [], "promoted_adapter" => nil}
    }

    # Nothing is contacted: an attempt would fail (no host, no in-process worker).
    for where <- [:host, :local] do
      assert Run.activate_after(job, where) == :ok

      assert_received {:mix_shell, :info,
                       ["--activate: no stage was promoted; nothing activated"]}
    end
  end

  test "an unusable result is a refusal that keeps the run's success clear" do
    job = %{"id" => 8, "result" => %{"run_dir" => "/d/r1", "promoted_adapter" => "/x/stage1"}}

    error = assert_raise Mix.Error, fn -> Run.activate_after(job, :local) end
    assert error.message =~ "the run succeeded (job 8), but its adapter was not activated"
    assert error.message =~ "/x/stage1 is not inside"
  end

  test "a refused activation on the in-process worker exits non-zero, naming the retry" do
    job = %{"id" => 9, "result" => %{"run_dir" => "/d/r1", "promoted_adapter" => "/d/r1/stage2"}}

    # No in-process worker is running in this test, so the worker call is refused.
    error = assert_raise Mix.Error, fn -> Run.activate_after(job, :local) end
    assert error.message =~ "the run succeeded (job 9)"
    assert error.message =~ "the model worker is not running"
    assert error.message =~ "mix adapters.activate r1/stage2"
    assert_received {:mix_shell, :info, ["activating r1/stage2" <> _]}
  end
end
