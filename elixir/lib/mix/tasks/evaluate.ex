defmodule Mix.Tasks.Evaluate do
  @shortdoc "Scores a model (or given completions) on an Elixir problem set by running the tests"

  @moduledoc """
  Execution-based evaluation: completions of a problem set run, sandboxed,
  against the set's own tests; reports pass@1 (pass@10 with >= 10 samples)
  and the compile rate. (Not `mix eval`: Mix has that built in.)

      mix evaluate --problems NAME|FILE [--model ID] [--samples N] [--temperature T]
                   [--max-tokens N] [--completions FILE] [--limit N] [--out DIR]
                   [--timeout SECONDS] [--workers N] [--loss-dataset FILE]...
                   [--fim-dataset FILE]... [--fim-limit N] [--json] [--priority 0..9] [--detach]

  Flags:

    * `--problems NAME|FILE` - `humaneval-elixir` or `mbpp-elixir` (shipped in
      `evals/`), or a JSONL file in the MultiPL-E (`name, prompt, tests,
      stop_tokens`) or McEval (`task_id, prompt, canonical_solution, test,
      entry_point`) format; the problems in `evals/multipl-e-unsolvable.txt`
      are left out and counted
    * `--model ID` - the served model id (default: the host's model),
      `ID:RUN/stageN` for a curriculum adapter, or a model directory
    * `--samples N` - completions per problem (default 1, greedy)
    * `--temperature T` - sampling temperature (default 0, or 0.8 when N > 1)
    * `--max-tokens N` - tokens per completion (default 512)
    * `--completions FILE` - score these completions instead of generating:
      JSONL of `{"task_id" or "name", "completion"}` (no model is loaded)
    * `--limit N` - the first N problems only
    * `--out DIR` - where `results.jsonl` and `summary.json` go
      (default `DATA_DIR/evaluations/SET-jobID`)
    * `--timeout SECONDS` - wall clock per program (default 5)
    * `--workers N` - programs run at once (default: the CPU cores)
    * `--loss-dataset FILE` - also eval loss and perplexity on this JSONL
      (repeatable; e.g. the held-out `stage1/eval.jsonl` and a general-code set)
    * `--fim-dataset FILE` - also FIM exact match and edit similarity of the
      greedy middle on these FIM rows (repeatable; e.g. `stage2/eval.jsonl`'s
      FIM rows); `--fim-limit N` rows per file (default 200)
    * `--json` - print the summary as one JSON line (`pass_at_1`,
      `pass_at_10` when there are >= 10 samples, `compile_rate`,
      `problems`, `samples`, `excluded`, `out`) instead of a table

  A pass: the test file's own ExUnit run reports at least one test and no
  failures, and the program exits 0. It runs as an `:evaluate` job
  (`DevstralElixir.Evaluation.Runner`) through `DevstralElixir.Jobs.CLI`.
  """
  use Mix.Task

  alias DevstralElixir.Evaluation.Request
  alias DevstralElixir.Jobs.CLI

  @task "evaluate"
  @switches [
    problems: :string,
    model: :string,
    samples: :integer,
    temperature: :float,
    max_tokens: :integer,
    completions: :string,
    limit: :integer,
    out: :string,
    timeout: :float,
    workers: :integer,
    loss_dataset: :keep,
    fim_dataset: :keep,
    fim_limit: :integer,
    json: :boolean
  ]

  @impl Mix.Task
  def run(argv) do
    flags = CLI.parse_flags!(@task, argv, @switches ++ CLI.job_switches())
    args = args!(flags)

    case CLI.run_job!(@task, :evaluate, args, Keyword.put(flags, :worker, true)) do
      nil -> :ok
      %{"result" => result} -> print(result, flags[:json])
    end
  end

  defp args!(flags) do
    for flag <- [:samples, :max_tokens, :limit, :workers, :fim_limit],
        do: CLI.positive!(@task, "--" <> String.replace(to_string(flag), "_", "-"), flags[flag])

    if (t = flags[:temperature]) && t < 0,
      do: Mix.raise("mix #{@task}: --temperature must be >= 0, got #{t}")

    if (t = flags[:timeout]) && t <= 0,
      do: Mix.raise("mix #{@task}: --timeout must be > 0, got #{t}")

    loss = flags |> Keyword.get_values(:loss_dataset) |> Enum.map(&Path.expand/1)
    fim = flags |> Keyword.get_values(:fim_dataset) |> Enum.map(&Path.expand/1)

    for {flag, path} <-
          Enum.map(loss, &{"--loss-dataset", &1}) ++ Enum.map(fim, &{"--fim-dataset", &1}),
        not File.regular?(path),
        do: Mix.raise("mix #{@task}: #{flag} #{path} does not exist")

    problems =
      try do
        if flags[:problems] == nil and loss ++ fim != [],
          do: nil,
          else: Request.problems!(flags[:problems])
      rescue
        error in ArgumentError -> Mix.raise("mix #{@task}: --#{error.message}")
      end

    if (c = flags[:completions]) && not File.regular?(c),
      do: Mix.raise("mix #{@task}: --completions #{c} does not exist")

    CLI.given(
      problems: problems,
      model: flags[:model],
      samples: flags[:samples],
      temperature: flags[:temperature],
      max_tokens: flags[:max_tokens],
      completions: flags[:completions] && Path.expand(flags[:completions]),
      limit: flags[:limit],
      out: flags[:out] && Path.expand(flags[:out]),
      timeout: flags[:timeout],
      workers: flags[:workers],
      loss_datasets: if(loss != [], do: loss),
      fim_datasets: if(fim != [], do: fim),
      fim_limit: flags[:fim_limit]
    )
    |> Map.new(fn {key, value} -> {Atom.to_string(key), value} end)
  end

  defp print(%{"metrics" => metrics, "out" => out}, json?) do
    summary =
      %{
        "pass_at_1" => metrics["pass_at_1"],
        "pass_at_10" => metrics["pass_at_10"],
        "compile_rate" => metrics["compile_rate"],
        "problems" => int(metrics["problems"]),
        "samples" => int(metrics["samples"]),
        "excluded" => int(metrics["excluded"]),
        "fim_exact_match" => metrics["fim_exact_match"],
        "fim_edit_similarity" => metrics["fim_edit_similarity"],
        "loss" => metrics["loss"],
        "perplexity" => metrics["perplexity"],
        "out" => out
      }
      |> Map.reject(fn {_k, v} -> is_nil(v) end)

    if json? do
      IO.puts(:jiffy.encode(summary))
    else
      Mix.shell().info("results in #{out}")

      for key <-
            ~w(pass_at_1 pass_at_10 compile_rate problems samples excluded fim_exact_match
               fim_edit_similarity loss perplexity),
          Map.has_key?(summary, key) do
        Mix.shell().info("  #{String.pad_trailing(key, 20)} #{format(summary[key])}")
      end
    end
  end

  defp int(nil), do: nil
  defp int(value), do: trunc(value)

  defp format(value) when is_integer(value), do: Integer.to_string(value)
  defp format(value), do: :erlang.float_to_binary(value / 1, decimals: 3)
end
