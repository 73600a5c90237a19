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
  """

  use Mix.Task

  alias DevstralElixir.Scrape.{CLI, Docs, Progress}

  @switches [out: :string, apps: :string, concurrency: :integer]

  @impl Mix.Task
  def run(args) do
    task = "scrape.docs"
    flags = CLI.parse_flags!(task, args, @switches)

    opts =
      CLI.given(
        out: flags[:out],
        apps: CLI.list(flags[:apps]),
        concurrency: CLI.positive!(task, "--concurrency", flags[:concurrency])
      )

    CLI.start!()
    summary = Docs.run(opts, Progress.printer())
    if summary.errors != [], do: Mix.raise("mix #{task}: #{Enum.join(summary.errors, "; ")}")
    summary
  end
end
