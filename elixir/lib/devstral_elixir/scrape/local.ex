defmodule DevstralElixir.Scrape.Local do
  @moduledoc """
  Ingests local directories (one source per path: a team's own codebase,
  Debian's `erlang-src` under `/usr/lib/erlang/lib`, ...) into the same
  layout and manifest as the other scrapers.

  Files are chosen with `DevstralElixir.Scrape.KeepList`; symbolic links
  are never followed and other special files are skipped. The caps of
  `DevstralElixir.Scrape.SafeTar` apply to the kept files. The package
  `name` is the directory's base name and its `version` the first 12 hex
  digits of a SHA-256 over the kept files' paths and contents, so a rerun
  skips unchanged directories and a changed one becomes a new version.
  The licence is `license` when given, else guessed from a `LICENSE`-like
  file (`DevstralElixir.Scrape.Licenses.detect/1`); no licence filter applies.
  """

  alias DevstralElixir.Scrape.{
    Batch,
    KeepList,
    Licenses,
    Paths,
    Progress,
    SafeTar,
    Workspace
  }

  @doc """
  The options with defaults: `out` (default `DATA_DIR/raw/local`),
  `license` (an SPDX id; default guessed), `concurrency` (default 2),
  `max_bytes`, `max_file_bytes`, `max_files`.
  """
  @spec options(keyword()) :: keyword()
  def options(opts) do
    defaults =
      [
        out: Paths.default_out("local"),
        license: nil,
        concurrency: 2
      ] ++ SafeTar.caps(SafeTar.defaults())

    opts |> Keyword.validate!(defaults) |> Keyword.update!(:out, &Path.expand/1)
  end

  @doc "Ingests each directory of `paths` and returns the run summary."
  @spec run([Path.t()], keyword(), Progress.fun()) :: map()
  def run(paths, opts \\ [], progress \\ Progress.silent()) do
    opts = options(opts)
    out = opts[:out]
    ctx = %{opts: opts, out: out, index: Workspace.open!(out)}

    summary =
      Batch.run(paths, &ingest(Path.expand(&1), ctx),
        source: "local",
        out: out,
        concurrency: opts[:concurrency],
        progress: progress,
        label: &{to_string(&1), nil}
      )

    Batch.finish(summary, progress)
  end

  defp ingest(path, ctx) do
    name = Workspace.safe_component(Path.basename(path))

    with :ok <- directory(path),
         :ok <- not_inside(path, ctx.out),
         {:ok, files} <- collect(path, ctx.opts),
         :ok <- not_empty(path, files) do
      digest = digest(path, files)
      version = binary_part(digest, 0, 12)

      if Map.has_key?(ctx.index, {name, version}),
        do: {:skipped, %{name: name, version: version, reason: :already_fetched}},
        else: publish(path, {name, version, digest}, files, ctx)
    else
      {:error, {reason, detail}} ->
        {:rejected, %{name: name, version: nil, reason: reason, detail: detail}}
    end
  end

  defp directory(path) do
    case File.lstat(path) do
      {:ok, %File.Stat{type: :directory}} ->
        :ok

      {:ok, %File.Stat{type: type}} ->
        {:error, {:not_a_directory, "#{path} is a #{type}, not a directory"}}

      {:error, reason} ->
        {:error, {:not_a_directory, "#{path}: #{:file.format_error(reason)}"}}
    end
  end

  # An install with compiled code only (such as /usr/lib/elixir/lib/*) would
  # otherwise be recorded as a package of no files.
  defp not_empty(path, []),
    do: {:error, {:no_source_files, "#{path} has no Elixir, Erlang or Markdown files"}}

  defp not_empty(_path, _files), do: :ok

  # Ingesting the output directory into itself would never end.
  defp not_inside(path, out) do
    if path == out or String.starts_with?(out, path <> "/") or
         String.starts_with?(path, out <> "/"),
       do: {:error, {:overlaps_out, "#{path} overlaps the output directory #{out}"}},
       else: :ok
  end

  @doc """
  The kept regular files under `root` as `{relative_path, size}`, sorted,
  without following symbolic links; `{:error, {reason, detail}}` when a cap
  is passed.
  """
  @spec collect(Path.t(), keyword()) ::
          {:ok, [{String.t(), non_neg_integer()}]} | {:error, {atom(), String.t()}}
  def collect(root, opts) do
    with {:ok, files, _total} <- walk(root, "", [], 0, opts), do: {:ok, Enum.sort(files)}
  end

  defp walk(root, rel, files, total, opts) do
    dir = Path.join(root, rel)

    case File.ls(dir) do
      {:ok, names} ->
        names
        |> Enum.sort()
        |> Enum.reduce_while({:ok, files, total}, fn name, {:ok, files, total} ->
          child = if rel == "", do: name, else: rel <> "/" <> name

          case visit(root, child, name, files, total, opts) do
            {:ok, _, _} = ok -> {:cont, ok}
            error -> {:halt, error}
          end
        end)

      {:error, reason} ->
        {:error, {:unreadable, "#{dir}: #{:file.format_error(reason)}"}}
    end
  end

  defp visit(root, child, name, files, total, opts) do
    case File.lstat(Path.join(root, child)) do
      {:ok, %File.Stat{type: :directory}} ->
        if KeepList.skipped_dir?(name) or String.starts_with?(name, "."),
          do: {:ok, files, total},
          else: walk(root, child, files, total, opts)

      {:ok, %File.Stat{type: :regular, size: size}} ->
        cond do
          not KeepList.keep?(child) ->
            {:ok, files, total}

          size > opts[:max_file_bytes] ->
            {:error,
             {:too_large,
              "#{child} is #{size} bytes, over the #{opts[:max_file_bytes]}-byte file cap"}}

          total + size > opts[:max_bytes] ->
            {:error,
             {:too_large,
              "the kept files pass the #{opts[:max_bytes]}-byte total cap at #{child}"}}

          length(files) >= opts[:max_files] ->
            {:error, {:too_many_files, "more than #{opts[:max_files]} kept files"}}

          true ->
            {:ok, [{child, size} | files], total + size}
        end

      # Symbolic links, devices, sockets and FIFOs are never read.
      {:ok, _other} ->
        {:ok, files, total}

      {:error, reason} ->
        {:error, {:unreadable, "#{child}: #{:file.format_error(reason)}"}}
    end
  end

  defp digest(root, files) do
    files
    |> Enum.reduce(:crypto.hash_init(:sha256), fn {rel, _}, acc ->
      content_hash = :crypto.hash(:sha256, File.read!(Path.join(root, rel)))
      :crypto.hash_update(acc, [rel, 0, content_hash])
    end)
    |> :crypto.hash_final()
    |> Base.encode16(case: :lower)
  end

  defp publish(root, {name, version, digest}, files, ctx) do
    work = Workspace.work_dir!(ctx.out, "#{name}-#{version}")
    staged = Path.join(work, "package")

    try do
      kept =
        for {rel, size} <- files, not SafeTar.binary_file?(Path.join(root, rel)) do
          target = Path.join(staged, rel)
          File.mkdir_p!(Path.dirname(target))
          File.cp!(Path.join(root, rel), target)
          File.chmod!(target, 0o644)
          {rel, size}
        end

      File.mkdir_p!(staged)
      licenses = licenses(root, kept, ctx.opts[:license])
      dir = "#{name}-#{version}"
      bytes = kept |> Enum.map(&elem(&1, 1)) |> Enum.sum()

      Workspace.finish_package!(staged, ctx.out, dir,
        shared: %{
          "name" => name,
          "version" => version,
          "source" => "local",
          "licenses" => licenses,
          "source_path" => root
        },
        manifest: %{"links" => %{}, "sha256" => digest},
        files: Enum.map(kept, &elem(&1, 0)),
        bytes: bytes
      )

      {:ok, %{name: name, version: version, files: length(kept), bytes: bytes}}
    after
      File.rm_rf!(work)
    end
  end

  defp licenses(_root, _kept, license) when is_binary(license), do: [license]

  defp licenses(root, kept, nil) do
    kept
    |> Enum.map(&elem(&1, 0))
    |> Enum.filter(
      &(not String.contains?(&1, "/") and Regex.match?(~r/^(licen[cs]e|copying|unlicense)/i, &1))
    )
    |> Enum.find_value([], fn rel ->
      case Licenses.detect(File.read!(Path.join(root, rel))) do
        nil -> nil
        spdx -> [spdx]
      end
    end)
  end
end
