defmodule DevstralElixir.Scrape.Hex do
  @moduledoc """
  Scrapes Hex.pm packages into an output directory (see
  `DevstralElixir.Scrape.Workspace` for the layout).

  1. List packages (`DevstralElixir.Scrape.Hex.Listing`).
  2. Per package, concurrently: skip it when already in the manifest, check
     its licences, `GET {api}/packages/NAME` and pick the latest stable,
     non-retired release (every non-retired release with `all_versions`).
  3. Per release: `GET {api}/packages/NAME/releases/VERSION` for the
     checksum, download `{repo}/tarballs/NAME-VERSION.tar`, verify its
     SHA-256, open it (`DevstralElixir.Scrape.Hex.Tarball`), extract the kept
     files (`DevstralElixir.Scrape.SafeTar`), write `metadata.json`, rename
     the package into place and append its manifest row.

  API requests are spaced `api_interval_ms` apart (700 ms: under Hex's 100
  requests a minute) and follow the rate-limit headers; see
  `DevstralElixir.Scrape.Http`. Every failure rejects that package alone,
  with a reason.
  """

  alias DevstralElixir.Scrape.{
    Batch,
    Http,
    Licenses,
    Limiter,
    Paths,
    Progress,
    SafeTar,
    Workspace
  }

  alias DevstralElixir.Scrape.Hex.{Listing, Tarball}

  @sorts ~w(recent_downloads total_downloads updated_at name)
  @name ~r/^[a-z][a-z0-9_]{0,99}$/

  @doc "The accepted `sort` values."
  @spec sorts() :: [String.t()]
  def sorts, do: @sorts

  @doc """
  The options with their defaults filled in:

    * `out`: output directory (default `DATA_DIR/raw/hex`);
    * `api_url`: the API (default `HEX_API_URL`, else `https://hex.pm/api`);
    * `repo_url`: the repository with the tarballs (default `HEX_MIRROR`,
      else `https://repo.hex.pm`);
    * `limit` (default all), `sort` (default `"recent_downloads"`),
      `min_downloads` (all-time, default 0), `updated_since` (a `Date`),
      `licenses` (default `DevstralElixir.Scrape.Licenses.default/0`),
      `all_versions` (default false);
    * `concurrency` (default 4);
    * `max_bytes`, `max_file_bytes`, `max_files`: extraction caps (see
      `DevstralElixir.Scrape.SafeTar`); `max_download_bytes` (default 64 MiB);
    * `api_interval_ms` (default 700), `page_size` (default 100);
    * `http`: options for `DevstralElixir.Scrape.Http.new/1` (retries,
      backoff, timeouts, an injected `sleep`/`now_ms`).
  """
  @spec options(keyword()) :: keyword()
  def options(opts) do
    defaults =
      [
        out: Paths.default_out("hex"),
        api_url: System.get_env("HEX_API_URL") || "https://hex.pm/api",
        repo_url: System.get_env("HEX_MIRROR") || "https://repo.hex.pm",
        limit: nil,
        sort: "recent_downloads",
        min_downloads: 0,
        updated_since: nil,
        licenses: Licenses.default(),
        all_versions: false,
        concurrency: 4
      ] ++
        SafeTar.caps(SafeTar.defaults()) ++
        [
          max_download_bytes: 64 * 1024 * 1024,
          api_interval_ms: 700,
          page_size: 100,
          http: []
        ]

    opts = Keyword.validate!(opts, defaults)

    unless opts[:updated_since] == nil or is_struct(opts[:updated_since], Date),
      do:
        raise(
          ArgumentError,
          "updated_since must be a Date, got: #{inspect(opts[:updated_since])}"
        )

    unless opts[:sort] in @sorts,
      do:
        raise(
          ArgumentError,
          "sort must be one of #{Enum.join(@sorts, ", ")}, got: #{inspect(opts[:sort])}"
        )

    opts
    |> Keyword.update!(:api_url, &String.trim_trailing(&1, "/"))
    |> Keyword.update!(:repo_url, &String.trim_trailing(&1, "/"))
    |> Keyword.update!(:out, &Path.expand/1)
  end

  @doc """
  Runs a Hex scrape and returns its summary (see
  `DevstralElixir.Scrape.Batch.empty_summary/2`); `progress` receives each
  package outcome and then the summary.
  """
  @spec run(keyword(), Progress.fun()) :: map()
  def run(opts \\ [], progress \\ Progress.silent()) do
    opts = options(opts)
    out = opts[:out]
    index = Workspace.open!(out)
    {:ok, limiter} = Limiter.start_link(interval_ms: opts[:api_interval_ms])

    try do
      api = Http.new([limiter: limiter, cache_dir: Workspace.cache_dir(out)] ++ opts[:http])
      ctx = %{opts: opts, out: out, index: index, api: api, repo: Http.new(opts[:http])}
      {candidates, errors} = Listing.list(api, opts)

      summary =
        Batch.run(candidates, &package(&1, ctx),
          source: "hex",
          out: out,
          concurrency: opts[:concurrency],
          progress: progress,
          label: &{to_string(&1["name"]), nil}
        )

      Batch.finish(summary, progress, errors)
    after
      Limiter.stop(limiter)
    end
  end

  ## One package

  defp package(entry, ctx) do
    name = entry["name"]
    latest = entry["latest_stable_version"]
    listed = meta(entry, "licenses")

    cond do
      not (is_binary(name) and name =~ @name) ->
        rejected(inspect(name), nil, {:invalid_name, "not a valid Hex package name"})

      not ctx.opts[:all_versions] and is_binary(latest) and
          Map.has_key?(ctx.index, {name, latest}) ->
        {:skipped, %{name: name, version: latest, reason: :already_fetched}}

      true ->
        # The listing's licences save a request when they already fail.
        with :ok <-
               if(listed in [nil, []], do: :ok, else: Licenses.check(listed, ctx.opts[:licenses])),
             {:ok, package} <- get_object(ctx.api, "#{ctx.opts[:api_url]}/packages/#{name}"),
             :ok <- Licenses.check(meta(package, "licenses") || listed, ctx.opts[:licenses]),
             {:ok, versions} <- versions(package, ctx.opts[:all_versions]) do
          Enum.map(versions, fn version ->
            if Map.has_key?(ctx.index, {name, version}),
              do: {:skipped, %{name: name, version: version, reason: :already_fetched}},
              else: release(name, version, package, ctx)
          end)
        else
          {:error, reason} -> rejected(name, latest, reason)
        end
    end
  end

  # A field of a package's `meta` object, tolerating any shape.
  defp meta(%{"meta" => %{} = meta}, key), do: meta[key]
  defp meta(_object, _key), do: nil

  defp get_object(http, url) do
    case Http.get_json(http, url) do
      {:ok, object} when is_map(object) -> {:ok, object}
      {:ok, _} -> {:error, {:bad_json, "GET #{url}: expected a JSON object"}}
      error -> error
    end
  end

  @doc """
  The versions to fetch from a package object: the latest stable,
  non-retired release, or with `all?` every non-retired release, newest first.
  """
  @spec versions(map(), boolean()) :: {:ok, [String.t()]} | {:error, {atom(), String.t()}}
  def versions(package, all?) do
    retired = if is_map(package["retirements"]), do: Map.keys(package["retirements"]), else: []

    candidates =
      for %{"version" => version} <- List.wrap(package["releases"]),
          is_binary(version),
          version =~ ~r/^[0-9A-Za-z.+-]{1,100}$/,
          {:ok, parsed} <- [Version.parse(version)],
          version not in retired,
          all? or parsed.pre == [],
          do: {parsed, version}

    case Enum.sort_by(candidates, &elem(&1, 0), {:desc, Version}) do
      [] -> {:error, {:no_release, "no #{if all?, do: "", else: "stable, "}non-retired release"}}
      sorted when all? -> {:ok, Enum.map(sorted, &elem(&1, 1))}
      [{_, latest} | _] -> {:ok, [latest]}
    end
  end

  ## One release

  defp release(name, version, package, ctx) do
    work = Workspace.work_dir!(ctx.out, "#{name}-#{version}")

    try do
      fetch_release(name, version, package, work, ctx)
    after
      File.rm_rf!(work)
    end
  end

  defp fetch_release(name, version, package, work, ctx) do
    opts = ctx.opts
    tar_url = "#{opts[:repo_url]}/tarballs/#{name}-#{version}.tar"
    tar_path = Path.join(work, "package.tar")
    staged = Path.join(work, "package")

    with {:ok, release} <-
           get_object(ctx.api, "#{opts[:api_url]}/packages/#{name}/releases/#{version}"),
         :ok <- not_retired(release),
         {:ok, checksum} <- checksum(release),
         {:ok, download} <-
           Http.download(ctx.repo, tar_url, tar_path, max_bytes: opts[:max_download_bytes]),
         :ok <- same_checksum(checksum, download.sha256),
         {:ok, tarball} <- Tarball.open(tar_path, work),
         :ok <- same_package(tarball.metadata, name, version),
         licenses = tarball.metadata["licenses"] || meta(package, "licenses"),
         :ok <- Licenses.check(licenses, opts[:licenses]),
         {:ok, extracted} <-
           SafeTar.extract_tgz(
             tarball.contents,
             staged,
             SafeTar.caps(opts)
           ) do
      dir = "#{name}-#{version}"
      metadata = tarball.metadata

      Workspace.finish_package!(staged, ctx.out, dir,
        shared: %{
          "name" => name,
          "version" => version,
          "source" => "hex",
          "licenses" => licenses,
          "links" => links(metadata["links"]) || links(meta(package, "links")) || %{},
          "sha256" => download.sha256
        },
        metadata: %{
          "description" => metadata["description"] || meta(package, "description"),
          "downloads" => package["downloads"],
          "source_url" => tar_url,
          "html_url" => package["html_url"],
          "requirements" => release["requirements"] || metadata["requirements"]
        },
        files: extracted.files,
        bytes: extracted.bytes
      )

      {:ok,
       %{
         name: name,
         version: version,
         files: length(extracted.files),
         bytes: extracted.bytes,
         downloaded: download.bytes
       }}
    else
      {:skip, reason, detail} ->
        {:skipped, %{name: name, version: version, reason: reason, detail: detail}}

      {:error, reason} ->
        rejected(name, version, reason)
    end
  end

  defp links(links) when is_map(links) and map_size(links) > 0, do: links
  defp links(_), do: nil

  defp not_retired(%{"retirement" => retirement}) when retirement not in [nil, false] do
    {:skip, :retired, "release is retired: #{inspect(retirement)}"}
  end

  defp not_retired(_release), do: :ok

  defp checksum(release) do
    case release["checksum"] do
      checksum when is_binary(checksum) ->
        if checksum =~ ~r/^[0-9a-fA-F]{64}$/,
          do: {:ok, String.downcase(checksum)},
          else:
            {:error, {:bad_release, "the release checksum #{inspect(checksum)} is not a SHA-256"}}

      other ->
        {:error, {:bad_release, "the release has no checksum (got #{inspect(other)})"}}
    end
  end

  defp same_checksum(expected, expected), do: :ok

  defp same_checksum(expected, actual),
    do:
      {:error,
       {:checksum_mismatch, "the tarball's SHA-256 is #{actual}, the release says #{expected}"}}

  defp same_package(%{"name" => name, "version" => version}, name, version), do: :ok

  defp same_package(metadata, name, version) do
    {:error,
     {:metadata_mismatch,
      "metadata.config names #{metadata["name"]} #{metadata["version"]}, expected #{name} #{version}"}}
  end

  defp rejected(name, version, {reason, detail}),
    do: {:rejected, %{name: name, version: version, reason: reason, detail: detail}}
end
