defmodule DevstralElixir.Test.Scrape.HexFixtures do
  @moduledoc """
  Builds real Hex package tarballs (format 3) from the fixture files:
  an outer tar holding `VERSION`, `CHECKSUM` (SHA-256 of VERSION,
  metadata.config and contents.tar.gz), `metadata.config` (Erlang terms)
  and `contents.tar.gz`. Every part can be overridden to make a hostile or
  broken package.
  """

  alias DevstralElixir.Test.Scrape.TarBuilder

  @fixtures Path.expand("../../devstral_elixir/scrape/fixtures", __DIR__)

  @doc "The fixture directory."
  @spec fixtures() :: Path.t()
  def fixtures, do: @fixtures

  @doc "The sample package's files as tar entries (9 files, 6 of them kept)."
  @spec sample_entries() :: [TarBuilder.entry()]
  def sample_entries, do: TarBuilder.dir_entries(Path.join(@fixtures, "sample"))

  @doc "How many of the sample files the keep list keeps."
  @spec sample_kept() :: pos_integer()
  def sample_kept, do: 6

  @doc """
  A package tarball. Options:
    * `licenses` (default `["MIT"]`), `links`, `description`;
    * `entries`: the contents' tar entries (default the sample files);
    * `contents`: the raw `contents.tar.gz` (overrides `entries`);
    * `version_file` (default `"3"`), `metadata` (raw metadata.config),
      `checksum` (raw CHECKSUM), `outer` (extra outer entries).
  """
  @spec tarball(String.t(), String.t(), keyword()) :: binary()
  def tarball(name, version, opts \\ []) do
    contents =
      Keyword.get_lazy(opts, :contents, fn ->
        TarBuilder.tgz(Keyword.get(opts, :entries, sample_entries()))
      end)

    version_file = Keyword.get(opts, :version_file, "3")

    metadata =
      Keyword.get_lazy(opts, :metadata, fn ->
        metadata_config(%{
          "name" => name,
          "version" => version,
          "app" => name,
          "description" => Keyword.get(opts, :description, "The #{name} fixture package."),
          "licenses" => Keyword.get(opts, :licenses, ["MIT"]),
          "links" =>
            Keyword.get(opts, :links, [{"GitHub", "https://github.com/example/#{name}"}]),
          "build_tools" => ["mix"],
          "elixir" => "~> 1.14",
          "requirements" => [
            {"jason",
             [
               {"app", "jason"},
               {"optional", false},
               {"requirement", "~> 1.0"},
               {"repository", "hexpm"}
             ]}
          ],
          "files" => ["lib", "mix.exs", "README.md", "LICENSE"]
        })
      end)

    checksum =
      Keyword.get_lazy(opts, :checksum, fn ->
        Base.encode16(:crypto.hash(:sha256, [version_file, metadata, contents]))
      end)

    TarBuilder.tar(
      [
        {:file, "VERSION", version_file},
        {:file, "CHECKSUM", checksum},
        {:file, "metadata.config", metadata},
        {:file, "contents.tar.gz", contents}
      ] ++ Keyword.get(opts, :outer, [])
    )
  end

  @doc "A metadata.config: one `{<<\"key\">>, Value}.` term per key, strings as binaries."
  @spec metadata_config(map()) :: binary()
  def metadata_config(map) do
    map
    |> Enum.sort()
    |> Enum.map(fn {key, value} -> :io_lib.format(~c"~tp.~n", [{key, erlang_value(value)}]) end)
    |> IO.chardata_to_string()
  end

  defp erlang_value(value) when is_binary(value), do: value
  defp erlang_value(value) when is_list(value), do: Enum.map(value, &erlang_value/1)
  defp erlang_value({key, value}), do: {key, erlang_value(value)}
  defp erlang_value(value), do: value

  @doc "The lower-case SHA-256 of a tarball, as the release API's `checksum`."
  @spec checksum(binary()) :: String.t()
  def checksum(tarball), do: Base.encode16(:crypto.hash(:sha256, tarball), case: :lower)
end
