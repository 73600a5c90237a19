defmodule Mix.Tasks.Scrape.Local do
  @shortdoc "Ingests local source directories into data/raw/local"

  @moduledoc """
  Ingests local directories, one source per PATH, into the scrapers'
  layout and manifest: the kept files (Elixir and Erlang source, docs,
  `mix.exs`, licences) are copied, symbolic links are never followed.
  A rerun skips directories whose kept files have not changed.

      mix scrape.local ../my_app /usr/lib/erlang/lib/stdlib-4.2 --out data/raw/local

  ## Flags

    * `--out DIR` - output directory (default `DATA_DIR/raw/local`)
    * `--license SPDX` - the licence to record (default: guessed from a
      LICENSE file, else none)
    * `--concurrency N` - directories ingested in parallel (default 2)
    * `--max-bytes N`, `--max-file-bytes N`, `--max-files N` - caps on the
      kept files (defaults 128 MiB, 16 MiB, 20000)
    * `--priority 0..9`, `--detach` - the scrape runs as a queued job; see
      `DevstralElixir.Scrape.Command`
  """

  use Mix.Task

  alias DevstralElixir.Jobs.CLI
  alias DevstralElixir.Scrape.Command

  @switches [
    out: :string,
    license: :string,
    concurrency: :integer
  ]

  @impl Mix.Task
  def run(args) do
    task = "scrape.local"

    {flags, paths} =
      CLI.parse!(task, args, @switches ++ Command.cap_switches() ++ CLI.job_switches())

    if paths == [],
      do: Mix.raise("mix #{task}: give at least one directory: mix #{task} PATH... [--out DIR]")

    opts =
      [
        out: flags[:out],
        license: flags[:license],
        concurrency: CLI.positive!(task, "--concurrency", flags[:concurrency])
      ] ++ Command.caps!(task, flags)

    Command.run!(task, "local", opts, flags, paths: paths)
  end
end
