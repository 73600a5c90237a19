defmodule DevstralElixir.Scrape.Command do
  @moduledoc """
  What the `mix scrape.*` tasks share beyond `DevstralElixir.Jobs.CLI`: the
  cap and rate flags, and running the scrape as a `:scrape` job
  (`DevstralElixir.Scrape.Runner`) whose summary line is printed at the end.

  The job goes to the host answering on `127.0.0.1:$HTTP_PORT` when there is
  one (its own environment then supplies `DATA_DIR`, `HEX_API_URL`,
  `HEX_MIRROR` and `GITHUB_TOKEN` for flags left out), else it runs in this
  process (`DevstralElixir.Jobs.CLI`). `--priority 0..9` sets its priority,
  `--detach` returns once it is enqueued, and Ctrl-C detaches without
  cancelling it.
  """

  alias DevstralElixir.Jobs.CLI
  alias DevstralElixir.Scrape.Runner

  @doc "The switches of the caps on the kept files (`--max-bytes`, `--max-file-bytes`, `--max-files`)."
  @spec cap_switches() :: keyword()
  def cap_switches, do: [max_bytes: :integer, max_file_bytes: :integer, max_files: :integer]

  @doc "The caps given among `flags` (see `cap_switches/0`), each checked with `CLI.positive!/3`."
  @spec caps!(String.t(), keyword()) :: keyword()
  def caps!(task, flags) do
    [
      max_bytes: CLI.positive!(task, "--max-bytes", flags[:max_bytes]),
      max_file_bytes: CLI.positive!(task, "--max-file-bytes", flags[:max_file_bytes]),
      max_files: CLI.positive!(task, "--max-files", flags[:max_files])
    ]
  end

  @doc "The interval in milliseconds between requests for a rate per minute."
  @spec interval(pos_integer()) :: non_neg_integer()
  def interval(per_minute), do: div(60_000 + per_minute - 1, per_minute)

  @doc """
  Runs a scrape of `source` with the scraper options `opts` (and `paths`
  for a local one) as a job, following it (`CLI.run_job!/4`; `flags` holds
  `--priority` and `--detach`), and prints its summary line. Returns the
  job's result, or nil when detached. With `strict: true` the run's own
  errors (an unknown docs application) fail the task even though the rest
  was scraped.
  """
  @spec run!(String.t(), String.t(), keyword(), keyword(), keyword()) :: map() | nil
  def run!(task, source, opts, flags, run_opts \\ []) do
    run_opts = Keyword.validate!(run_opts, paths: nil, strict: false)
    args = Runner.args(source, CLI.given(opts), run_opts[:paths])

    case CLI.run_job!(task, :scrape, args, flags) do
      nil ->
        nil

      %{"result" => result} ->
        IO.puts(result["summary"])

        if run_opts[:strict] and result["errors"] != [],
          do: Mix.raise("mix #{task}: #{Enum.join(result["errors"], "; ")}")

        result
    end
  end
end
