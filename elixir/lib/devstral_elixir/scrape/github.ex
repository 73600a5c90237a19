defmodule DevstralElixir.Scrape.GitHub do
  @moduledoc """
  Scrapes Elixir repositories from GitHub into an output directory, in the
  same layout, manifest and resume scheme as `DevstralElixir.Scrape.Hex`.

  1. Search (`DevstralElixir.Scrape.GitHub.Search`), with the search limit
     (10 requests a minute without a token, 30 with `GITHUB_TOKEN`).
  2. Per repository, concurrently: skip it when already in the manifest or
     when it is the source of a Hex package already scraped (matched
     through the Hex manifest's `links`; the skip is recorded in
     `skipped.jsonl`), check `license.spdx_id` against the allowed list,
     download `GET {api}/repos/OWNER/REPO/tarball/REF` (following the
     redirect), extract it with `DevstralElixir.Scrape.SafeTar` stripping
     the `owner-repo-sha/` top directory, and publish it as
     `OWNER-REPO-SHA/` with a `metadata.json` and a manifest row whose
     `name` is `OWNER/REPO` and `version` the commit.
  """

  alias DevstralElixir.Scrape.{
    Batch,
    Http,
    Licenses,
    Limiter,
    Manifest,
    Paths,
    Progress,
    SafeTar,
    Workspace
  }

  alias DevstralElixir.Scrape.GitHub.Search

  @segment ~r/^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}$/

  @doc """
  The options with their defaults filled in:

    * `out` (default `DATA_DIR/raw/github`), `api_url` (default
      `https://api.github.com`), `token` (default `GITHUB_TOKEN`);
    * `min_stars` (default 10), `pushed_since` (a `Date`, default one year
      ago), `limit` (default all), `licenses` (default
      `DevstralElixir.Scrape.Licenses.default/0`);
    * `hex_manifest`: the Hex manifest used for cross-source dedup (default
      `DATA_DIR/raw/hex/manifest.jsonl`; missing means no dedup);
    * `concurrency` (default 4), caps as in `DevstralElixir.Scrape.SafeTar`,
      `max_download_bytes` (default 256 MiB);
    * `search_interval_ms` (default 6,500 without a token, 2,100 with),
      `core_interval_ms` (default 750), `per_page` (100), `result_cap` (1000);
    * `http`: options for `DevstralElixir.Scrape.Http.new/1`.
  """
  @spec options(keyword()) :: keyword()
  def options(opts) do
    defaults =
      [
        out: Paths.default_out("github"),
        api_url: "https://api.github.com",
        token: System.get_env("GITHUB_TOKEN"),
        min_stars: 10,
        pushed_since: Date.add(Date.utc_today(), -365),
        limit: nil,
        licenses: Licenses.default(),
        hex_manifest: Path.join(Paths.default_out("hex"), "manifest.jsonl"),
        concurrency: 4
      ] ++
        SafeTar.caps(SafeTar.defaults()) ++
        [
          max_download_bytes: 256 * 1024 * 1024,
          search_interval_ms: nil,
          core_interval_ms: 750,
          per_page: 100,
          result_cap: 1000,
          http: []
        ]

    opts = Keyword.validate!(opts, defaults)

    unless is_struct(opts[:pushed_since], Date),
      do:
        raise(ArgumentError, "pushed_since must be a Date, got: #{inspect(opts[:pushed_since])}")

    token = if opts[:token] in [nil, ""], do: nil, else: opts[:token]

    opts
    |> Keyword.put(:token, token)
    |> Keyword.put(
      :search_interval_ms,
      opts[:search_interval_ms] || if(token, do: 2_100, else: 6_500)
    )
    |> Keyword.update!(:api_url, &String.trim_trailing(&1, "/"))
    |> Keyword.update!(:out, &Path.expand/1)
  end

  @doc "Runs a GitHub scrape and returns its summary; `progress` gets each outcome, then the summary."
  @spec run(keyword(), Progress.fun()) :: map()
  def run(opts \\ [], progress \\ Progress.silent()) do
    opts = options(opts)
    out = opts[:out]
    index = Workspace.open!(out)
    {:ok, search_limiter} = Limiter.start_link(interval_ms: opts[:search_interval_ms])
    {:ok, core_limiter} = Limiter.start_link(interval_ms: opts[:core_interval_ms])

    try do
      headers =
        [{"accept", "application/vnd.github+json"}, {"x-github-api-version", "2022-11-28"}] ++
          if(opts[:token], do: [{"authorization", "Bearer #{opts[:token]}"}], else: [])

      search = Http.new([limiter: search_limiter, headers: headers] ++ opts[:http])
      core = Http.new([limiter: core_limiter, headers: headers] ++ opts[:http])

      ctx = %{
        opts: opts,
        out: out,
        core: core,
        done: MapSet.new(Map.keys(index), &elem(&1, 0)),
        hex: hex_sources(opts[:hex_manifest])
      }

      {repos, errors} = Search.collect(search, opts)

      summary =
        Batch.run(repos, &repository(&1, ctx),
          source: "github",
          out: out,
          concurrency: opts[:concurrency],
          progress: progress,
          label: &{to_string(&1["full_name"]), nil}
        )

      Batch.finish(summary, progress, errors)
    after
      Limiter.stop(search_limiter)
      Limiter.stop(core_limiter)
    end
  end

  @doc """
  The GitHub repositories (`"owner/repo"`, lower case) named in the `links`
  of a Hex manifest, mapped to the Hex package name.
  """
  @spec hex_sources(Path.t() | nil) :: %{String.t() => String.t()}
  def hex_sources(nil), do: %{}

  def hex_sources(path) do
    for row <- Manifest.read_rows(path),
        is_map(row["links"]),
        link <- Map.values(row["links"]),
        repo = github_repo(link),
        repo != nil,
        into: %{},
        do: {repo, row["name"]}
  end

  @doc "The `owner/repo` (lower case) of a GitHub URL, or `nil`."
  @spec github_repo(term()) :: String.t() | nil
  def github_repo(url) when is_binary(url) do
    case Regex.run(~r{github\.com[/:]([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+)}i, url) do
      [_, owner, repo] -> String.downcase("#{owner}/#{String.replace_suffix(repo, ".git", "")}")
      nil -> nil
    end
  end

  def github_repo(_), do: nil

  ## One repository

  defp repository(item, ctx) do
    full = item["full_name"]

    with {:ok, owner, repo} <- split_name(full),
         :ok <- not_done(full, ctx),
         :ok <- not_on_hex(full, ctx),
         spdx = spdx(item["license"]),
         :ok <- Licenses.check(List.wrap(spdx), ctx.opts[:licenses]) do
      work = Workspace.work_dir!(ctx.out, "#{owner}-#{repo}")

      try do
        fetch(item, owner, repo, spdx, work, ctx)
      after
        File.rm_rf!(work)
      end
    else
      {:skip, reason, detail} ->
        {:skipped, %{name: full, version: nil, reason: reason, detail: detail}}

      {:error, {reason, detail}} ->
        rejected(full, nil, reason, detail)
    end
  end

  defp spdx(%{"spdx_id" => id}) when is_binary(id), do: id
  defp spdx(_license), do: nil

  defp split_name(full) do
    with [owner, repo] <- String.split(full, "/"),
         true <- owner =~ @segment and repo =~ @segment and repo not in [".", ".."] do
      {:ok, owner, repo}
    else
      _ -> {:error, {:invalid_name, "not a valid owner/repository name"}}
    end
  end

  defp not_done(full, ctx) do
    if MapSet.member?(ctx.done, full), do: {:skip, :already_fetched, nil}, else: :ok
  end

  defp not_on_hex(full, ctx) do
    case ctx.hex[String.downcase(full)] do
      nil ->
        :ok

      package ->
        {:skip, :duplicate_of_hex, "the source of Hex package #{package}, already scraped"}
    end
  end

  defp fetch(item, owner, repo, spdx, work, ctx) do
    opts = ctx.opts
    full = "#{owner}/#{repo}"
    ref = if is_binary(item["default_branch"]), do: item["default_branch"], else: "HEAD"

    url =
      "#{opts[:api_url]}/repos/#{owner}/#{repo}/tarball/#{URI.encode(ref, &URI.char_unreserved?/1)}"

    staged = Path.join(work, "repo")
    caps = SafeTar.caps(opts)

    with {:ok, download} <-
           Http.download(ctx.core, url, Path.join(work, "repo.tar.gz"),
             max_bytes: opts[:max_download_bytes]
           ),
         {:ok, extracted} <-
           SafeTar.extract_tgz(
             Path.join(work, "repo.tar.gz"),
             staged,
             [strip_components: 1] ++ caps
           ) do
      commit = commit(extracted.top, ref)
      dir = Workspace.safe_component("#{owner}-#{repo}-#{String.slice(commit, 0, 12)}")

      Workspace.finish_package!(staged, ctx.out, dir,
        shared: %{
          "name" => full,
          "version" => commit,
          "source" => "github",
          "licenses" => [spdx],
          "links" => %{"GitHub" => item["html_url"] || "https://github.com/#{full}"},
          "sha256" => download.sha256
        },
        metadata: %{
          "description" => item["description"],
          "stars" => item["stargazers_count"],
          "pushed_at" => item["pushed_at"],
          "ref" => ref,
          "source_url" => url
        },
        files: extracted.files,
        bytes: extracted.bytes
      )

      {:ok,
       %{
         name: full,
         version: commit,
         files: length(extracted.files),
         bytes: extracted.bytes,
         downloaded: download.bytes
       }}
    else
      {:error, {reason, detail}} -> rejected(full, ref, reason, detail)
    end
  end

  # GitHub names the top directory owner-repo-SHA.
  defp commit(top, ref) when is_binary(top) do
    sha = top |> String.split("-") |> List.last()
    if sha =~ ~r/^[0-9a-f]{7,40}$/, do: sha, else: ref
  end

  defp commit(nil, ref), do: ref

  defp rejected(name, version, reason, detail),
    do: {:rejected, %{name: name, version: version, reason: reason, detail: detail}}
end
