defmodule DevstralElixir.Curriculum.Report do
  @moduledoc """
  `RUN/REPORT.md`: the base model and every judged stage side by side (pass@1,
  compile rate, Elixir and general-code eval loss, gate verdict), with a bar
  chart of pass@1 and compile rate in `RUN/report.svg` (plain SVG written
  here, no plotting library). Built from the host's own records only
  (`run.json`, `baseline.json`); rewritten after every stage, atomically.
  """

  alias DevstralElixir.Curriculum.{ExecutionEval, Files, Plan, RunRecord}

  @doc "Writes `RUN/REPORT.md` and `RUN/report.svg` from the run's records."
  @spec write(Plan.t()) :: :ok | {:error, String.t()}
  def write(%Plan{} = plan) do
    rows = rows(plan)

    with :ok <- Files.write_atomic(Path.join(plan.run_dir, "report.svg"), svg(rows)) do
      Files.write_atomic(Path.join(plan.run_dir, "REPORT.md"), markdown(plan, rows))
    end
  end

  @doc "One row per model: `%{label, pass_at_1, compile_rate, eval_loss, general_eval_loss, gate}`."
  @spec rows(Plan.t()) :: [map()]
  def rows(%Plan{} = plan) do
    stages = RunRecord.stages(plan)
    baseline = ExecutionEval.recorded_baseline(plan) || %{}
    first = List.first(stages)
    from_base = first && (first["reported"] || %{})

    base = %{
      label: "base model",
      pass_at_1: baseline["pass_at_1"],
      compile_rate: baseline["compile_rate"],
      eval_loss: from_base && from_base["eval_loss_before"],
      general_eval_loss: from_base && from_base["general_eval_loss_before"],
      gate: ""
    }

    [base] ++
      for stage <- stages do
        reported = stage["reported"] || %{}

        %{
          label: "stage #{stage["stage"]} (#{stage["name"]})",
          pass_at_1: reported["pass_at_1"],
          compile_rate: reported["compile_rate"],
          eval_loss: reported["eval_loss"],
          general_eval_loss: reported["general_eval_loss"],
          gate: if(stage["passed"], do: "passed", else: "failed: #{stage["reason"]}")
        }
      end
  end

  defp markdown(plan, rows) do
    problems = plan.config.execution_eval.problems

    [
      "# Curriculum run #{plan.run}\n\n",
      "Base model: `#{plan.config.base_model}`. ",
      if(problems,
        do: "pass@1 and compile rate: `mix evaluate` on `#{problems}`",
        else: "No execution-based evaluation (set `execution_eval` in the config)"
      ),
      ".\n\n",
      "| model | pass@1 | compile rate | Elixir eval loss | general eval loss | gate |\n",
      "| --- | --- | --- | --- | --- | --- |\n",
      for row <- rows do
        cells = [
          row.label,
          num(row.pass_at_1, 3),
          num(row.compile_rate, 3),
          num(row.eval_loss, 4),
          num(row.general_eval_loss, 4),
          row.gate
        ]

        ["| ", Enum.map_join(cells, " | ", &cell/1), " |\n"]
      end,
      "\n![pass@1 and compile rate](report.svg)\n"
    ]
  end

  defp num(nil, _decimals), do: "-"
  defp num(value, decimals), do: :erlang.float_to_binary(value / 1, decimals: decimals)

  # A table cell holds no pipe and no line break.
  defp cell(text), do: text |> String.replace("|", "\\|") |> String.replace(~r/\s+/, " ")

  @width 640
  @height 300
  @left 50
  @bottom 60
  @top 30

  @doc "The bar chart (pass@1 and compile rate per model, 0 to 1) as SVG."
  @spec svg([map()]) :: iodata()
  def svg(rows) do
    plot_h = @height - @bottom - @top
    group_w = (@width - @left - 20) / max(length(rows), 1)
    bar_w = group_w / 3
    y = fn value -> @top + plot_h * (1 - value) end

    bars =
      for {row, i} <- Enum.with_index(rows),
          {key, color, offset} <- [{:pass_at_1, "#4c72b0", 0.5}, {:compile_rate, "#dd8452", 1.5}],
          value = row[key],
          is_number(value) do
        x = @left + i * group_w + offset * bar_w

        ~s(<rect x="#{f(x)}" y="#{f(y.(value))}" width="#{f(bar_w * 0.9)}" ) <>
          ~s(height="#{f(plot_h * value)}" fill="#{color}"><title>#{esc(row.label)} #{key}: ) <>
          ~s(#{num(value, 3)}</title></rect>\n)
      end

    labels =
      for {row, i} <- Enum.with_index(rows) do
        x = @left + (i + 0.5) * group_w

        ~s(<text x="#{f(x)}" y="#{@height - @bottom + 16}" text-anchor="middle" ) <>
          ~s(font-size="11">#{esc(short(row.label))}</text>\n)
      end

    ticks =
      for t <- [0.0, 0.25, 0.5, 0.75, 1.0] do
        ~s(<line x1="#{@left}" x2="#{@width - 10}" y1="#{f(y.(t))}" y2="#{f(y.(t))}" ) <>
          ~s(stroke="#ddd"/><text x="#{@left - 6}" y="#{f(y.(t) + 4)}" text-anchor="end" ) <>
          ~s(font-size="11">#{num(t, 2)}</text>\n)
      end

    [
      ~s(<svg xmlns="http://www.w3.org/2000/svg" width="#{@width}" height="#{@height}" ),
      ~s(font-family="sans-serif">\n<rect width="100%" height="100%" fill="white"/>\n),
      ticks,
      bars,
      labels,
      ~s(<rect x="#{@left}" y="#{@height - 24}" width="12" height="12" fill="#4c72b0"/>),
      ~s(<text x="#{@left + 16}" y="#{@height - 14}" font-size="12">pass@1</text>\n),
      ~s(<rect x="#{@left + 90}" y="#{@height - 24}" width="12" height="12" fill="#dd8452"/>),
      ~s(<text x="#{@left + 106}" y="#{@height - 14}" font-size="12">compile rate</text>\n),
      "</svg>\n"
    ]
  end

  defp short(label), do: label |> String.split(" (") |> hd()
  defp f(value), do: :erlang.float_to_binary(value / 1, decimals: 1)

  defp esc(text) do
    text
    |> String.replace("&", "&amp;")
    |> String.replace("<", "&lt;")
    |> String.replace(">", "&gt;")
    |> String.replace("\"", "&quot;")
  end
end
