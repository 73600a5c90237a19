defmodule Mix.Tasks.Scrape.Docs do
  @shortdoc "Writes the Markdown docs of the installed Elixir/OTP applications into data/raw/docs"

  @moduledoc """
  Writes the documentation of every module of the installed Elixir and OTP
  applications as Markdown (via `Code.fetch_docs/1`), one package per
  application (`OUT/APP-VSN/Module.md`), with the licence (Apache-2.0) and
  source recorded in `metadata.json` and `OUT/manifest.jsonl`. OTP
  applications whose documentation chunks are not installed are skipped.

      mix scrape.docs --apps elixir,eex,ex_unit

  ## Flags

    * `--out DIR` - output directory (default `DATA_DIR/raw/docs`)
    * `--apps A,B` - only these applications (default all installed)
    * `--concurrency N` - applications rendered in parallel (default 2)
    * `--priority 0..9`, `--detach` - the scrape runs as a queued job; see
      `DevstralElixir.Scrape.Command`
  """

  use Mix.Task

  alias DevstralElixir.Jobs.CLI
  alias DevstralElixir.Scrape.Command

  @switches [out: :string, apps: :string, concurrency: :integer]

  @impl Mix.Task
  def run(args) do
    task = "scrape.docs"
    flags = CLI.parse_flags!(task, args, @switches ++ CLI.job_switches())

    opts = [
      out: flags[:out],
      apps: CLI.list(flags[:apps]),
      concurrency: CLI.positive!(task, "--concurrency", flags[:concurrency])
    ]

    Command.run!(task, "docs", opts, flags, strict: true)
  end
end
