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

    * `--priority 0..9`, `--detach` - the job's priority; enqueue and return at once

  The build runs as a `:build_dataset` job (`DevstralElixir.Dataset.BuildRunner`):
  on the host answering on `127.0.0.1:$HTTP_PORT` when there is one, else in
  this process with its own Python worker. Ctrl-C detaches without
  cancelling it.
  """
  use Mix.Task

  alias DevstralElixir.Dataset.Build
  alias DevstralElixir.Jobs.CLI

  @task "curriculum.build"
  @switches [input: :keep, out: :string, config: :string, seed: :integer, eval_file: :keep]

  @impl Mix.Task
  def run(argv) do
    flags = CLI.parse_flags!(@task, argv, @switches ++ CLI.job_switches())
    inputs = Keyword.get_values(flags, :input)
    eval_files = Keyword.get_values(flags, :eval_file)

    # Checked here too, so bad input fails before a job exists.
    try do
      Build.request!(
        inputs: inputs,
        out: flags[:out],
        config: flags[:config],
        seed: flags[:seed] || 0,
        eval_files: eval_files
      )
    rescue
      error in ArgumentError -> Mix.raise("mix #{@task}: #{error.message}")
    end

    args =
      CLI.given(
        inputs: Enum.map(inputs, &Path.expand/1),
        out: Path.expand(flags[:out]),
        config: flags[:config] && Path.expand(flags[:config]),
        seed: flags[:seed],
        eval_files: Enum.map(eval_files, &Path.expand/1)
      )
      |> Map.new(fn {key, value} -> {Atom.to_string(key), value} end)

    case CLI.run_job!(@task, :build_dataset, args, Keyword.put(flags, :worker, true)) do
      nil -> :ok
      %{"result" => result} -> summary(result)
    end
  end

  defp summary(%{"out" => out, "metrics" => metrics}) do
    Mix.shell().info("dataset written to #{out}")

    for {name, value} <- Enum.sort(metrics) do
      Mix.shell().info("  #{name}: #{CLI.format_number(value)}")
    end
  end
end
