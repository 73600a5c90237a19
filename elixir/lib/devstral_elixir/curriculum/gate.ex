defmodule DevstralElixir.Curriculum.Gate do
  @moduledoc """
  The promotion gate of a curriculum stage, as a pure function over the
  numbers the worker reported (the metrics of its `COMPLETED` Train event).
  The worker measures; the host only compares.

  A stage passes when

    * its Elixir eval loss improved by at least `min_elixir_improvement_pct`
      percent: `-eval_loss_change_pct >= min`, and
    * its general-code eval loss worsened by at most
      `max_general_regression_pct` percent: `general_eval_loss_change_pct <= max`.

  The worker reports each change as `(after - before) / before * 100`, with
  "before" the model the stage started from (the base model, or the previous
  stage's adapter) and "after" the stage's adapter; the losses themselves
  (`eval_loss_before`, `eval_loss`, `general_eval_loss_before`,
  `general_eval_loss`) only make the reason readable. Without a general-code
  measure the second rule is skipped, and the verdict says so.

  Two optional rules use the execution-based evaluation (`mix evaluate`'s
  numbers, which the curriculum measures after each stage when its config
  has `execution_eval`); nil (the default) leaves a rule out:

    * `min_pass_at_1_gain`: `pass_at_1 >= base_pass_at_1 + gain`, with
      `base_pass_at_1` the base model's, measured before stage 1 (e.g. 0.02);
    * `min_compile_rate`: `compile_rate >= min` (e.g. 0.9).
  """

  defstruct min_elixir_improvement_pct: 1.0,
            max_general_regression_pct: 5.0,
            min_pass_at_1_gain: nil,
            min_compile_rate: nil

  @type t :: %__MODULE__{
          min_elixir_improvement_pct: float(),
          max_general_regression_pct: float(),
          min_pass_at_1_gain: float() | nil,
          min_compile_rate: float() | nil
        }

  @typedoc "The worker's reported metrics (string keys, numbers)."
  @type reported :: %{optional(String.t()) => number()}

  @type verdict :: %{
          passed: boolean(),
          reason: String.t() | nil,
          elixir_improvement_pct: float() | nil,
          general_regression_pct: float() | nil,
          general_checked: boolean(),
          min_elixir_improvement_pct: float(),
          max_general_regression_pct: float(),
          min_pass_at_1_gain: float() | nil,
          min_compile_rate: float() | nil,
          pass_at_1: float() | nil,
          base_pass_at_1: float() | nil,
          compile_rate: float() | nil
        }

  @doc "The verdict on the numbers a stage's worker reported."
  @spec verdict(t(), reported()) :: verdict()
  def verdict(%__MODULE__{} = gate, reported) when is_map(reported) do
    elixir = change(reported, "eval_loss", "Elixir")
    general_given? = Enum.any?(Map.keys(reported), &String.starts_with?(&1, "general_eval_loss"))
    general = if general_given?, do: change(reported, "general_eval_loss", "general-code")

    failures =
      Enum.reject(
        [
          elixir_failure(gate, elixir),
          general_failure(gate, general),
          pass_at_1_failure(gate.min_pass_at_1_gain, reported),
          compile_rate_failure(gate.min_compile_rate, reported)
        ],
        &is_nil/1
      )

    %{
      passed: failures == [],
      reason: if(failures == [], do: nil, else: Enum.join(failures, "; ")),
      elixir_improvement_pct: improvement(elixir),
      general_regression_pct: regression(general),
      general_checked: general_given?,
      min_elixir_improvement_pct: gate.min_elixir_improvement_pct,
      max_general_regression_pct: gate.max_general_regression_pct,
      min_pass_at_1_gain: gate.min_pass_at_1_gain,
      min_compile_rate: gate.min_compile_rate,
      pass_at_1: number(reported["pass_at_1"]),
      base_pass_at_1: number(reported["base_pass_at_1"]),
      compile_rate: number(reported["compile_rate"])
    }
  end

  defp pass_at_1_failure(nil, _reported), do: nil

  defp pass_at_1_failure(gain, reported) do
    case {number(reported["pass_at_1"]), number(reported["base_pass_at_1"])} do
      {after_, base} when is_float(after_) and is_float(base) ->
        if after_ >= base + gain - 1.0e-12,
          do: nil,
          else: "pass@1 #{rate(after_)} is below the base model's #{rate(base)} + #{rate(gain)}"

      {after_, base} ->
        "the gate needs pass@1 of the stage and of the base model " <>
          "(pass_at_1 #{inspect(after_)}, base_pass_at_1 #{inspect(base)}): " <>
          "set execution_eval in the curriculum config"
    end
  end

  defp compile_rate_failure(nil, _reported), do: nil

  defp compile_rate_failure(min, reported) do
    case number(reported["compile_rate"]) do
      nil ->
        "the gate needs a compile rate (compile_rate nil): set execution_eval in the curriculum config"

      rate when rate >= min ->
        nil

      rate ->
        "compile rate #{rate(rate)} is below the required #{rate(min)}"
    end
  end

  defp number(value) when is_number(value), do: value / 1
  defp number(_), do: nil

  defp rate(value), do: :erlang.float_to_binary(value / 1, decimals: 3)

  # {:ok, before, after, change_pct} or {:invalid, message}
  defp change(reported, key, label) do
    before = reported["#{key}_before"]
    after_ = reported[key]
    change = reported["#{key}_change_pct"]

    if is_number(change) and is_number(before) and is_number(after_) do
      {:ok, before, after_, change / 1}
    else
      {:invalid,
       "the worker reported no usable #{label} eval loss change (#{key}_before " <>
         "#{inspect(before)}, #{key} #{inspect(after_)}, #{key}_change_pct #{inspect(change)})"}
    end
  end

  defp elixir_failure(_gate, {:invalid, message}), do: message

  defp elixir_failure(gate, {:ok, before, after_, change}) do
    if 0.0 - change >= gate.min_elixir_improvement_pct do
      nil
    else
      "Elixir eval loss improved by #{pct(0.0 - change)}, less than the required " <>
        "#{pct(gate.min_elixir_improvement_pct)} (#{loss(before)} -> #{loss(after_)})"
    end
  end

  defp general_failure(_gate, nil), do: nil
  defp general_failure(_gate, {:invalid, message}), do: message

  defp general_failure(gate, {:ok, before, after_, change}) do
    if change <= gate.max_general_regression_pct do
      nil
    else
      "general-code eval loss worsened by #{pct(change)}, more than the allowed " <>
        "#{pct(gate.max_general_regression_pct)} (#{loss(before)} -> #{loss(after_)})"
    end
  end

  defp improvement({:ok, _, _, change}), do: 0.0 - change
  defp improvement(_), do: nil

  defp regression({:ok, _, _, change}), do: change
  defp regression(_), do: nil

  defp pct(value), do: :erlang.float_to_binary(value / 1, decimals: 2) <> "%"
  defp loss(value), do: :erlang.float_to_binary(value / 1, decimals: 4)
end
