defmodule DevstralElixir.Curriculum.GateTest do
  use ExUnit.Case, async: true

  alias DevstralElixir.Curriculum.Gate

  @gate %Gate{min_elixir_improvement_pct: 2.0, max_general_regression_pct: 5.0}

  # The metrics a worker reports (it computes the changes; the gate never does).
  defp losses(eb, ea, gb \\ nil, ga \\ nil) do
    reported = %{
      "eval_loss_before" => eb,
      "eval_loss" => ea,
      "eval_loss_change_pct" => pct(eb, ea)
    }

    if gb,
      do:
        Map.merge(reported, %{
          "general_eval_loss_before" => gb,
          "general_eval_loss" => ga,
          "general_eval_loss_change_pct" => pct(gb, ga)
        }),
      else: reported
  end

  defp pct(before, after_), do: (after_ - before) / before * 100

  test "passes when Elixir improves enough and general code does not worsen too much" do
    verdict = Gate.verdict(@gate, losses(2.0, 1.8, 1.0, 1.03))
    assert verdict.passed
    assert verdict.reason == nil
    assert_in_delta verdict.elixir_improvement_pct, 10.0, 1.0e-9
    assert_in_delta verdict.general_regression_pct, 3.0, 1.0e-9
    assert verdict.general_checked
    assert verdict.min_elixir_improvement_pct == 2.0
  end

  test "the thresholds are inclusive" do
    assert Gate.verdict(@gate, losses(100.0, 98.0, 100.0, 105.0)).passed
  end

  test "fails when Elixir loss improves too little, or worsens" do
    verdict = Gate.verdict(@gate, losses(2.0, 1.99, 1.0, 1.0))
    refute verdict.passed

    assert verdict.reason ==
             "Elixir eval loss improved by 0.50%, less than the required 2.00% (2.0000 -> 1.9900)"

    verdict = Gate.verdict(@gate, losses(2.0, 2.2))
    refute verdict.passed
    assert verdict.reason =~ "improved by -10.00%"
  end

  test "fails when general-code loss worsens too much" do
    verdict = Gate.verdict(@gate, losses(2.0, 1.5, 1.0, 1.1))
    refute verdict.passed

    assert verdict.reason =~
             "general-code eval loss worsened by 10.00%, more than the allowed 5.00% (1.0000 -> 1.1000)"
  end

  test "both failures are reported" do
    verdict = Gate.verdict(@gate, losses(2.0, 2.0, 1.0, 2.0))
    assert verdict.reason =~ "Elixir eval loss improved by 0.00%"
    assert verdict.reason =~ "; general-code eval loss worsened by 100.00%"
  end

  test "without a general-code eval set only the Elixir rule applies" do
    verdict = Gate.verdict(@gate, losses(2.0, 1.0))
    assert verdict.passed
    refute verdict.general_checked
    assert verdict.general_regression_pct == nil
  end

  test "the reported change is used as reported, not recomputed from the losses" do
    verdict = Gate.verdict(@gate, %{losses(2.0, 1.0) | "eval_loss_change_pct" => -1.0})
    refute verdict.passed
    assert verdict.reason =~ "Elixir eval loss improved by 1.00%"
  end

  test "a missing number fails the gate, naming what the worker did not report" do
    verdict = Gate.verdict(@gate, Map.delete(losses(2.0, 1.0), "eval_loss_change_pct"))
    refute verdict.passed
    assert verdict.reason =~ "the worker reported no usable Elixir eval loss change"
    assert verdict.reason =~ "eval_loss_change_pct nil"

    verdict = Gate.verdict(@gate, Map.delete(losses(2.0, 1.0, 1.0, 1.0), "general_eval_loss"))
    refute verdict.passed
    assert verdict.reason =~ "no usable general-code eval loss change"
  end

  describe "execution-based rules" do
    @exec %Gate{
      min_elixir_improvement_pct: 2.0,
      max_general_regression_pct: 5.0,
      min_pass_at_1_gain: 0.02,
      min_compile_rate: 0.9
    }

    defp with_exec(pass, base, compile) do
      Map.merge(losses(2.0, 1.8), %{
        "pass_at_1" => pass,
        "base_pass_at_1" => base,
        "compile_rate" => compile
      })
    end

    test "pass@1 must beat the base model's by the gain, and the compile rate reach its minimum" do
      verdict = Gate.verdict(@exec, with_exec(0.32, 0.30, 0.95))
      assert verdict.passed

      assert {verdict.pass_at_1, verdict.base_pass_at_1, verdict.compile_rate} ==
               {0.32, 0.3, 0.95}

      verdict = Gate.verdict(@exec, with_exec(0.31, 0.30, 0.95))
      refute verdict.passed
      assert verdict.reason == "pass@1 0.310 is below the base model's 0.300 + 0.020"

      verdict = Gate.verdict(@exec, with_exec(0.5, 0.3, 0.85))
      assert verdict.reason == "compile rate 0.850 is below the required 0.900"
    end

    test "a rule without its numbers fails and says what to set" do
      verdict = Gate.verdict(@exec, losses(2.0, 1.8))
      refute verdict.passed
      assert verdict.reason =~ "the gate needs pass@1 of the stage and of the base model"
      assert verdict.reason =~ "set execution_eval in the curriculum config"
    end

    test "nil rules (the default) ignore the numbers" do
      assert Gate.verdict(@gate, with_exec(0.0, 0.5, 0.0)).passed
    end
  end
end
