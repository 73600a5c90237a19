defmodule DevstralElixir.Scrape.Workspace do
  @moduledoc """
  The layout of an output directory:

      OUT/manifest.jsonl      one row per complete package
      OUT/skipped.jsonl       packages skipped or rejected, with the reason
      OUT/NAME-VERSION/       the kept files and metadata.json of a package
      OUT/.tmp/               work in progress (cleared when a run starts)
      OUT/.cache/             ETag cache of listings

  A package is built in its own directory under `.tmp` and renamed into
  place when complete, so a crash never leaves a half-written package.
  One run at a time should use an output directory.
  """

  alias DevstralElixir.Scrape.{Json, Manifest}

  @doc "Creates `out` and clears work left in `.tmp` by an earlier, interrupted run."
  @spec prepare!(Path.t()) :: :ok
  def prepare!(out) do
    File.mkdir_p!(out)
    File.rm_rf!(tmp_root(out))
    File.mkdir_p!(tmp_root(out))
    :ok
  end

  @doc """
  Opens `out` for a run that owns it: `prepare!/1`, then the manifest index
  (`DevstralElixir.Scrape.Manifest.load/1`) of the packages already there.
  """
  @spec open!(Path.t()) :: Manifest.index()
  def open!(out) do
    prepare!(out)
    Manifest.load(Manifest.path(out))
  end

  @doc "The ETag cache directory of `out`."
  @spec cache_dir(Path.t()) :: Path.t()
  def cache_dir(out), do: Path.join([out, ".cache", "http"])

  @doc "A fresh, empty work directory under `out/.tmp` for the package `label`."
  @spec work_dir!(Path.t(), String.t()) :: Path.t()
  def work_dir!(out, label) do
    dir = Path.join(tmp_root(out), "#{label}.#{System.unique_integer([:positive])}")
    File.mkdir_p!(dir)
    dir
  end

  @doc "Writes `metadata` as pretty JSON to `dir/metadata.json`."
  @spec write_metadata!(Path.t(), map()) :: :ok
  def write_metadata!(dir, metadata) do
    File.write!(Path.join(dir, "metadata.json"), :jiffy.encode(metadata, [:use_nil, :pretty]))
  end

  @doc """
  Moves the finished package directory `ready` to `out/name`, replacing a
  directory left there by a run that stopped before recording it.
  """
  @spec publish!(Path.t(), Path.t(), String.t()) :: Path.t()
  def publish!(ready, out, name) do
    dest = Path.join(out, name)
    File.rm_rf!(dest)
    File.rename!(ready, dest)
    dest
  end

  @doc """
  Completes a package staged in `staged`: writes its `metadata.json`,
  moves it to `out/dir` (`publish!/3`) and appends its manifest row.

  Both records hold the `shared` fields and `fetched_at` (now); the metadata
  adds `metadata` and the list of `files`, the manifest row adds `manifest`,
  the number of `files`, their `bytes` and the `path` (`dir`).
  """
  @spec finish_package!(Path.t(), Path.t(), String.t(), keyword()) :: :ok
  def finish_package!(staged, out, dir, record) do
    record =
      Keyword.validate!(record, [:files, :bytes, shared: %{}, metadata: %{}, manifest: %{}])

    files = record[:files]
    shared = Map.put(record[:shared], "fetched_at", now())

    write_metadata!(staged, shared |> Map.merge(record[:metadata]) |> Map.put("files", files))
    publish!(staged, out, dir)

    Manifest.append(
      Manifest.path(out),
      shared
      |> Map.merge(record[:manifest])
      |> Map.merge(%{"files" => length(files), "bytes" => record[:bytes], "path" => dir})
    )
  end

  @doc "Appends a record of a skipped or rejected package to `out/skipped.jsonl`."
  @spec record_skip(Path.t(), map()) :: :ok
  def record_skip(out, row) do
    File.write!(Path.join(out, "skipped.jsonl"), Json.encode(row) <> "\n", [:append])
  end

  @doc "The current UTC time as ISO 8601, for `fetched_at`."
  @spec now() :: String.t()
  def now, do: DateTime.utc_now() |> DateTime.truncate(:second) |> DateTime.to_iso8601()

  @doc """
  `name` made safe as one path component: only letters, digits, `.`, `_`
  and `-`, not starting with a dot.
  """
  @spec safe_component(String.t()) :: String.t()
  def safe_component(name) do
    name
    |> String.replace(~r/[^A-Za-z0-9._-]/, "_")
    |> String.replace(~r/^\.+/, "_")
    |> String.slice(0, 200)
  end

  defp tmp_root(out), do: Path.join(out, ".tmp")
end
