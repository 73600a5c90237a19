defmodule DevstralElixir.Scrape.Manifest do
  @moduledoc """
  The append-only `manifest.jsonl` of an output directory: one JSON object
  per line, one line per complete package, written only after the package
  directory has been renamed into place.

  Each row is appended with a single write on a file opened in append mode
  and then fsynced, so concurrent writers never interleave and a row that is
  in the file is on disk. A crash can leave at most a partial last line;
  `load/1` drops it (truncating the file back to its last newline) so the
  next append starts on a fresh line.
  """

  require Logger

  alias DevstralElixir.Scrape.Json

  @type row :: %{optional(String.t()) => term()}
  @type index :: %{optional({String.t(), String.t()}) => row()}

  @doc "The manifest path of an output directory."
  @spec path(Path.t()) :: Path.t()
  def path(out), do: Path.join(out, "manifest.jsonl")

  @doc """
  Reads a manifest (missing means empty) into an index keyed by
  `{name, version}`, first repairing a truncated last line. Only a run that
  owns the output directory should call this; other readers use
  `read_rows/1`, which never writes.
  """
  @spec load(Path.t()) :: index()
  def load(path) do
    repair(path)

    path
    |> read_rows()
    |> Map.new(fn row -> {{row["name"], row["version"]}, row} end)
  end

  @doc "The complete rows of a manifest in file order; a partial last line is ignored."
  @spec read_rows(Path.t()) :: [row()]
  def read_rows(path) do
    case File.read(path) do
      {:ok, data} ->
        data
        |> String.split("\n")
        |> Enum.drop(-1)
        |> Enum.with_index(1)
        |> Enum.flat_map(fn {line, number} -> decode(path, line, number) end)

      {:error, :enoent} ->
        []

      {:error, reason} ->
        raise File.Error, reason: reason, action: "read manifest", path: path
    end
  end

  defp decode(_path, "", _number), do: []

  defp decode(path, line, number) do
    case Json.decode(line) do
      {:ok, %{"name" => name, "version" => version} = row}
      when is_binary(name) and is_binary(version) ->
        [row]

      _ ->
        Logger.warning("#{path}:#{number}: ignoring a malformed manifest line")
        []
    end
  end

  # Everything after the last newline is a row cut short by a crash.
  defp repair(path) do
    case File.read(path) do
      {:ok, data} -> repair(path, data)
      {:error, :enoent} -> :ok
    end
  end

  defp repair(path, data) do
    keep =
      case :binary.matches(data, "\n") do
        [] -> 0
        matches -> matches |> List.last() |> elem(0) |> Kernel.+(1)
      end

    if keep < byte_size(data) do
      Logger.warning("#{path}: dropping a truncated last line (#{byte_size(data) - keep} bytes)")

      {:ok, file} = :file.open(String.to_charlist(path), [:read, :write, :binary, :raw])

      try do
        {:ok, _} = :file.position(file, keep)
        :ok = :file.truncate(file)
        :ok = :file.sync(file)
      after
        :file.close(file)
      end
    end

    :ok
  end

  @doc "Appends `row` as one line and fsyncs it."
  @spec append(Path.t(), row()) :: :ok
  def append(path, row) do
    line = Json.encode(row) <> "\n"
    File.mkdir_p!(Path.dirname(path))
    {:ok, file} = :file.open(String.to_charlist(path), [:append, :binary, :raw])

    try do
      :ok = :file.write(file, line)
      :ok = :file.sync(file)
    after
      :file.close(file)
    end
  end
end
