defmodule DevstralElixir.Scrape.Hex.Tarball do
  @moduledoc """
  Opens a downloaded Hex package tarball (format version 3).

  The outer tar must hold exactly `VERSION` (`3`), `CHECKSUM` (the SHA-256 of
  `VERSION`, `metadata.config` and `contents.tar.gz` concatenated),
  `metadata.config` and `contents.tar.gz`, all plain files.
  `metadata.config` is parsed by `DevstralElixir.Scrape.Hex.Metadata`;
  `contents.tar.gz` is written into a work directory for
  `DevstralElixir.Scrape.SafeTar` to extract.
  """

  alias DevstralElixir.Scrape.Hex.Metadata
  alias DevstralElixir.Scrape.SafeTar

  @expected ~w(CHECKSUM VERSION contents.tar.gz metadata.config)
  @small %{"VERSION" => 16, "CHECKSUM" => 256, "metadata.config" => 1024 * 1024}

  @doc """
  Checks the tarball at `path` and writes its `contents.tar.gz` into
  `work_dir`. Returns the parsed metadata and the contents path, or
  `{reason, detail}` with reason `:truncated`, `:bad_archive`, `:bad_version`,
  `:checksum_mismatch` or `:malformed_metadata`.
  """
  @spec open(Path.t(), Path.t()) ::
          {:ok, %{metadata: map(), contents: Path.t()}} | {:error, {atom(), String.t()}}
  def open(path, work_dir) do
    with {:ok, entries} <- SafeTar.table(path),
         :ok <- check_entries(entries),
         {:ok, files} <- read(path),
         :ok <- check_version(files["VERSION"]),
         :ok <- check_inner_checksum(files),
         {:ok, metadata} <- Metadata.parse(files["metadata.config"]) do
      contents = Path.join(work_dir, "contents.tar.gz")
      File.write!(contents, files["contents.tar.gz"])
      {:ok, %{metadata: metadata, contents: contents}}
    end
  end

  defp check_entries(entries) do
    names = Enum.map(entries, fn entry -> List.to_string(elem(entry, 0)) end)
    types = Enum.map(entries, &elem(&1, 1))

    cond do
      Enum.sort(names) != @expected ->
        {:error,
         {:bad_archive,
          "the outer tar must hold exactly VERSION, CHECKSUM, metadata.config and contents.tar.gz; " <>
            "it holds #{inspect(names)}"}}

      Enum.any?(types, &(&1 != :regular)) ->
        {:error, {:bad_archive, "the outer tar holds entries that are not plain files"}}

      too_big =
          Enum.find(entries, fn e ->
            elem(e, 2) > Map.get(@small, List.to_string(elem(e, 0)), :infinity)
          end) ->
        {:error, {:bad_archive, "#{elem(too_big, 0)} is #{elem(too_big, 2)} bytes, too large"}}

      true ->
        :ok
    end
  end

  defp read(path) do
    case :erl_tar.extract(String.to_charlist(path), [:memory]) do
      {:ok, files} -> {:ok, Map.new(files, fn {name, bin} -> {List.to_string(name), bin} end)}
      {:error, :eof} -> {:error, {:truncated, "the outer tar ends early"}}
      {:error, reason} -> {:error, {:bad_archive, "unreadable outer tar: #{inspect(reason)}"}}
    end
  end

  defp check_version(version) do
    case String.trim(version) do
      "3" ->
        :ok

      other ->
        {:error,
         {:bad_version, "VERSION is #{inspect(String.slice(other, 0, 16))}, expected \"3\""}}
    end
  end

  defp check_inner_checksum(files) do
    computed =
      :crypto.hash(:sha256, [files["VERSION"], files["metadata.config"], files["contents.tar.gz"]])
      |> Base.encode16()

    stated = files["CHECKSUM"] |> String.trim() |> String.upcase()

    if stated == computed,
      do: :ok,
      else:
        {:error,
         {:checksum_mismatch,
          "inner CHECKSUM is #{inspect(String.slice(stated, 0, 64))}, the contents hash to #{computed}"}}
  end
end
