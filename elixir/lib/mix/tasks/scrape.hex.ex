defmodule Mix.Tasks.Scrape.Hex do
  @shortdoc "Downloads permissively licensed Hex packages into data/raw/hex"

  @moduledoc """
  Downloads Hex packages, verifies and safely extracts their source and
  docs, and records each in `OUT/manifest.jsonl`. A rerun resumes: packages
  already in the manifest are skipped.

      mix scrape.hex --limit 100 --sort recent_downloads

  ## Flags

    * `--out DIR` - output directory (default `DATA_DIR/raw/hex`, where
      `DATA_DIR` defaults to the repository's `data/`)
    * `--api-url URL` - Hex API (default `$HEX_API_URL`, else `https://hex.pm/api`)
    * `--repo-url URL` - repository with the tarballs (default `$HEX_MIRROR`,
      else `https://repo.hex.pm`)
    * `--limit N` - at most N packages (default all)
    * `--sort S` - `recent_downloads` (default), `total_downloads`, `updated_at` or `name`
    * `--min-downloads N` - only packages with at least N downloads in all
    * `--updated-since YYYY-MM-DD` - only packages updated on or after the date
    * `--licenses A,B` - allowed licences (default MIT, Apache-2.0,
      BSD-2-Clause, BSD-3-Clause, ISC, 0BSD, Unlicense, MPL-2.0)
    * `--all-versions` - every non-retired release, not just the latest stable one
    * `--concurrency N` - parallel downloads (default 4)
    * `--requests-per-minute N` - API request rate (default 85; Hex allows 100)
    * `--max-bytes N` - cap on a package's uncompressed size (default 128 MiB)
    * `--max-file-bytes N` - cap on one file (default 16 MiB)
    * `--max-files N` - cap on a package's entries (default 20000)
    * `--priority 0..9`, `--detach` - the scrape runs as a queued job; see
      `DevstralElixir.Scrape.Command`
  """

  use Mix.Task

  alias DevstralElixir.Jobs.CLI
  alias DevstralElixir.Scrape.{Command, Hex}

  @switches [
    out: :string,
    api_url: :string,
    repo_url: :string,
    limit: :integer,
    sort: :string,
    min_downloads: :integer,
    updated_since: :string,
    licenses: :string,
    all_versions: :boolean,
    concurrency: :integer,
    requests_per_minute: :integer
  ]

  @impl Mix.Task
  def run(args) do
    task = "scrape.hex"

    flags =
      CLI.parse_flags!(task, args, @switches ++ Command.cap_switches() ++ CLI.job_switches())

    sort = flags[:sort]

    if sort && sort not in Hex.sorts(),
      do:
        Mix.raise(
          "mix #{task}: --sort must be one of #{Enum.join(Hex.sorts(), ", ")}, got #{inspect(sort)}"
        )

    rate = CLI.positive!(task, "--requests-per-minute", flags[:requests_per_minute])

    opts =
      [
        out: flags[:out],
        api_url: flags[:api_url],
        repo_url: flags[:repo_url],
        limit: CLI.positive!(task, "--limit", flags[:limit]),
        sort: sort,
        min_downloads: flags[:min_downloads],
        updated_since: CLI.date!(task, "--updated-since", flags[:updated_since]),
        licenses: CLI.list(flags[:licenses]),
        all_versions: flags[:all_versions],
        concurrency: CLI.positive!(task, "--concurrency", flags[:concurrency]),
        api_interval_ms: rate && Command.interval(rate)
      ] ++ Command.caps!(task, flags)

    Command.run!(task, "hex", opts, flags)
  end
end
