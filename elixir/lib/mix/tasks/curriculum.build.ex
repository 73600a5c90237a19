defmodule Mix.Tasks.Curriculum.Build do
  @shortdoc "Builds the three-stage curriculum dataset from scraped corpora"

  @moduledoc """
  Turns scraped corpora into the curriculum dataset (stage 1 general code,
  stage 2 FIM and instruction pairs, stage 3 book material) by calling the
  Python worker's `BuildDataset` method, with live progress.

      mix curriculum.build --input ../data/raw/hex --input ../data/raw/github \\
        --out ../data/datasets/elixir-v1 [--config FILE] [--seed N] [--eval-file F]...

  Flags:

    * `--input DIR` - a scraper output directory (with `manifest.jsonl`); repeatable
    * `--out DIR` - the dataset directory; written atomically (temporary directory, then rename)
    * `--config FILE` - builder settings, `.json` or `.exs` (a map); defaults otherwise
    * `--seed N` - the split and sampling seed; the same inputs and seed give identical bytes
    * `--eval-file F` - an extra evaluation JSONL to decontaminate against (repeatable;
      the public sets in the project's `evals/` are used unless the config's
      `decontam.eval_dir` names another directory or `"none"`)

  Output: `OUT/stage{1,2,3}/{train,eval}.jsonl`, `OUT/manifest.json` and
  `OUT/REPORT.md`. Bad input (a missing directory, a broken manifest, a
  malformed config) is reported before any work starts.
  """
  use Mix.Task

  alias DevstralElixir.Dataset.Build
  alias DevstralElixir.Proto.JobEvent
  alias DevstralElixir.Worker

  @switches [input: :keep, out: :string, config: :string, seed: :integer, eval_file: :keep]

  @impl Mix.Task
  def run(argv) do
    {opts, rest, invalid} = OptionParser.parse(argv, strict: @switches)

    if invalid != [],
      do: Mix.raise("mix curriculum.build: invalid option #{elem(hd(invalid), 0)}")

    if rest != [], do: Mix.raise("mix curriculum.build: unexpected argument #{inspect(hd(rest))}")

    request =
      try do
        Build.request!(
          inputs: Keyword.get_values(opts, :input),
          out: opts[:out],
          config: opts[:config],
          seed: opts[:seed] || 0,
          eval_files: Keyword.get_values(opts, :eval_file)
        )
      rescue
        error in ArgumentError -> Mix.raise("mix curriculum.build: #{error.message}")
      end

    # Only the code and config: starting the application would boot the host's
    # own worker and HTTP server, which this task does not need.
    Mix.Task.run("app.config")
    {:ok, _} = Application.ensure_all_started(:crypto)
    Mix.shell().info("starting the Python worker...")
    worker = Worker.Local.start!()

    case Build.run(worker, request, &print/1) do
      {:ok, done} ->
        Mix.shell().info("\ndataset written to #{done.artifact_path || request.out_dir}")
        summary(done)

      {:error, message} ->
        Mix.raise("mix curriculum.build: #{message}")
    end
  end

  defp print(%JobEvent{kind: :LOG, message: message}), do: Mix.shell().info("\n" <> message)

  defp print(%JobEvent{kind: :PROGRESS} = event) do
    steps = if event.total_steps > 0, do: " #{event.step}/#{event.total_steps}", else: ""
    eta = if event.eta_ms > 0, do: "  eta #{div(event.eta_ms, 1000)}s", else: ""
    IO.write(:stdio, "\r\e[2K[#{event.phase}]#{steps} #{event.message}#{eta}")
  end

  defp print(_event), do: :ok

  defp summary(%JobEvent{metrics: metrics}) do
    for {name, value} <- Enum.sort(metrics) do
      Mix.shell().info("  #{name}: #{format(value)}")
    end
  end

  defp format(value) when value == trunc(value), do: Integer.to_string(trunc(value))
  defp format(value), do: :erlang.float_to_binary(value, decimals: 3)
end
