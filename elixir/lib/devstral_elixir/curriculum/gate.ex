defmodule DevstralElixir.Curriculum.Gate do
  @moduledoc """
  The promotion gate of a curriculum stage, as a pure function.

  A stage passes when

    * its Elixir eval loss improves by at least `min_elixir_improvement_pct`
      percent: `(before - after) / before * 100 >= min`, and
    * its general-code eval loss worsens by at most `max_general_regression_pct`
      percent: `(after - before) / before * 100 <= max`.

  "Before" is the model the stage started from (the base model, or the
  previous stage's adapter); "after" is the stage's adapter. Without a
  general-code eval set the second rule is skipped, and the verdict says so.
  """

  defstruct min_elixir_improvement_pct: 1.0, max_general_regression_pct: 5.0

  @type t :: %__MODULE__{
          min_elixir_improvement_pct: float(),
          max_general_regression_pct: float()
        }

  @type losses :: %{
          required(:elixir_before) => number(),
          required(:elixir_after) => number(),
          optional(:general_before) => number() | nil,
          optional(:general_after) => number() | nil
        }

  @type verdict :: %{
          passed: boolean(),
          reason: String.t() | nil,
          elixir_improvement_pct: float() | nil,
          general_regression_pct: float() | nil,
          general_checked: boolean(),
          min_elixir_improvement_pct: float(),
          max_general_regression_pct: float()
        }

  @doc "The verdict for a stage's eval losses."
  @spec verdict(t(), losses()) :: verdict()
  def verdict(%__MODULE__{} = gate, losses) do
    elixir = change(losses[:elixir_before], losses[:elixir_after], "Elixir")
    general_given? = losses[:general_before] != nil or losses[:general_after] != nil

    general =
      if general_given?,
        do: change(losses[:general_before], losses[:general_after], "general-code")

    failures =
      Enum.reject(
        [elixir_failure(gate, elixir), general_failure(gate, general)],
        &is_nil/1
      )

    %{
      passed: failures == [],
      reason: if(failures == [], do: nil, else: Enum.join(failures, "; ")),
      elixir_improvement_pct: improvement(elixir),
      general_regression_pct: regression(general),
      general_checked: general_given?,
      min_elixir_improvement_pct: gate.min_elixir_improvement_pct,
      max_general_regression_pct: gate.max_general_regression_pct
    }
  end

  @doc "The relative change from `before` to `after`, in percent of `before` (positive: it grew)."
  @spec change_pct(number(), number()) :: float()
  def change_pct(before, after_) when is_number(before) and is_number(after_) and before > 0,
    do: (after_ - before) / before * 100

  # {:ok, before, after, change_pct} or {:invalid, message}
  defp change(before, after_, label) do
    if valid_loss?(before) and valid_loss?(after_) do
      {:ok, before, after_, change_pct(before, after_)}
    else
      {:invalid,
       "the #{label} eval loss is not usable (before #{inspect(before)}, after #{inspect(after_)}): " <>
         "both must be positive numbers"}
    end
  end

  defp valid_loss?(loss), do: is_number(loss) and loss > 0

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
