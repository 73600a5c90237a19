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
    * `--priority 0..9`, `--detach` - the job's priority; enqueue and return at once

  The scrape runs as a `:scrape` job (`DevstralElixir.Scrape.Runner`): on the
  host answering on `127.0.0.1:$HTTP_PORT` when there is one (its own
  environment then supplies `DATA_DIR`, `HEX_API_URL`, `HEX_MIRROR` and
  `GITHUB_TOKEN` for flags left out), else in this process. Ctrl-C detaches
  without cancelling it.
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
