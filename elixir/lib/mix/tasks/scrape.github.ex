defmodule Mix.Tasks.Scrape.Github do
  @shortdoc "Downloads permissively licensed Elixir repositories from GitHub into data/raw/github"

  @moduledoc """
  Searches GitHub for Elixir repositories, downloads their tarballs, safely
  extracts source and docs and records each in `OUT/manifest.jsonl`.
  Repositories that are the source of a Hex package already scraped are
  skipped (and recorded in `OUT/skipped.jsonl`). A rerun resumes.

      GITHUB_TOKEN=... mix scrape.github --min-stars 50 --limit 500

  Set `GITHUB_TOKEN` for the higher limits (30 searches a minute instead of
  10, 5,000 API requests an hour instead of 60).

  ## Flags

    * `--out DIR` - output directory (default `DATA_DIR/raw/github`)
    * `--api-url URL` - GitHub API (default `https://api.github.com`)
    * `--min-stars N` - minimum stars (default 10)
    * `--pushed-since YYYY-MM-DD` - only repositories pushed after the date
      (default one year ago)
    * `--limit N` - at most N repositories (default all)
    * `--licenses A,B` - allowed SPDX licences (default as for `mix scrape.hex`)
    * `--hex-manifest PATH` - Hex manifest for the dedup (default
      `DATA_DIR/raw/hex/manifest.jsonl`)
    * `--concurrency N` - parallel downloads (default 4)
    * `--searches-per-minute N` - search rate (default 9, or 28 with a token)
    * `--requests-per-minute N` - other API requests (default 80)
    * `--max-bytes N`, `--max-file-bytes N`, `--max-files N` - extraction caps
      (defaults 128 MiB, 16 MiB, 20000)
    * `--priority 0..9`, `--detach` - the scrape runs as a queued job; see
      `DevstralElixir.Scrape.Command`
  """

  use Mix.Task

  alias DevstralElixir.Jobs.CLI
  alias DevstralElixir.Scrape.Command

  @switches [
    out: :string,
    api_url: :string,
    min_stars: :integer,
    pushed_since: :string,
    limit: :integer,
    licenses: :string,
    hex_manifest: :string,
    concurrency: :integer,
    searches_per_minute: :integer,
    requests_per_minute: :integer
  ]

  @impl Mix.Task
  def run(args) do
    task = "scrape.github"

    flags =
      CLI.parse_flags!(task, args, @switches ++ Command.cap_switches() ++ CLI.job_switches())

    searches = CLI.positive!(task, "--searches-per-minute", flags[:searches_per_minute])
    requests = CLI.positive!(task, "--requests-per-minute", flags[:requests_per_minute])

    if flags[:min_stars] && flags[:min_stars] < 0,
      do: Mix.raise("mix #{task}: --min-stars must not be negative")

    opts =
      [
        out: flags[:out],
        api_url: flags[:api_url],
        min_stars: flags[:min_stars],
        pushed_since: CLI.date!(task, "--pushed-since", flags[:pushed_since]),
        limit: CLI.positive!(task, "--limit", flags[:limit]),
        licenses: CLI.list(flags[:licenses]),
        hex_manifest: flags[:hex_manifest],
        concurrency: CLI.positive!(task, "--concurrency", flags[:concurrency]),
        search_interval_ms: searches && Command.interval(searches),
        core_interval_ms: requests && Command.interval(requests)
      ] ++ Command.caps!(task, flags)

    Command.run!(task, "github", opts, flags)
  end
end
