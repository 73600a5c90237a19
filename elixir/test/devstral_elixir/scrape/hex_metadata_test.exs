defmodule DevstralElixir.Scrape.Hex.MetadataTest do
  use ExUnit.Case, async: true

  alias DevstralElixir.Scrape.Hex.{Metadata, Tarball}
  alias DevstralElixir.Test.Scrape.{HexFixtures, Tmp}

  test "parses the Erlang terms of a real metadata.config" do
    config = """
    {<<"app">>,<<"jason">>}.
    {<<"build_tools">>,[<<"mix">>]}.
    {<<"description">>,<<"A blazing fast JSON parser and generator in pure Elixir."/utf8>>}.
    {<<"elixir">>,<<"~> 1.4">>}.
    {<<"licenses">>,[<<"Apache-2.0">>]}.
    {<<"links">>,[{<<"GitHub">>,<<"https://github.com/michalmuskala/jason">>}]}.
    {<<"name">>,<<"jason">>}.
    {<<"requirements">>,
     [{<<"decimal">>,
       [{<<"app">>,<<"decimal">>},
        {<<"optional">>,true},
        {<<"requirement">>,<<"~> 1.0 or ~> 2.0">>},
        {<<"repository">>,<<"hexpm">>}]}]}.
    {<<"version">>,<<"1.4.4">>}.
    """

    assert {:ok, metadata} = Metadata.parse(config)
    assert metadata["name"] == "jason"
    assert metadata["version"] == "1.4.4"
    assert metadata["licenses"] == ["Apache-2.0"]
    assert metadata["links"] == %{"GitHub" => "https://github.com/michalmuskala/jason"}
    assert metadata["requirements"]["decimal"]["optional"] == true
    assert metadata["build_tools"] == ["mix"]
  end

  test "the fixture builder's metadata round-trips" do
    config =
      HexFixtures.metadata_config(%{"name" => "x", "version" => "1.0.0", "licenses" => ["MIT"]})

    assert {:ok, %{"name" => "x", "licenses" => ["MIT"]}} = Metadata.parse(config)
  end

  test "code is never evaluated: anything that is not a plain term is malformed" do
    marker = Path.join(Tmp.dir!(), "evaluated")

    for config <- [
          ~s|{<<"name">>, os:cmd("touch #{marker}")}.\n{<<"version">>,<<"1.0.0">>}.|,
          ~s|{<<"name">>, fun() -> ok end}.|,
          ~s|{<<"name">>, <<"x">>}.\n{<<"version">>, list_to_atom("boom")}.|,
          ~s|{<<"name">>,<<"x">>}.\n{<<"version">>,<<"1.0.0">>}|,
          ~s|{name, <<"x">>}.|,
          ~s|{<<"version">>,<<"1.0.0">>}.|,
          ~s|{<<"name">>,<<"x">>}.\n{<<"version">>,1}.|,
          <<"{<<\"name\">>,<<\"", 0xFF, "\">>}.">>,
          ~s|{<<"name">>,<<"x">>}.\n"unterminated string|
        ] do
      assert {:error, {:malformed_metadata, "metadata.config: " <> _}} = Metadata.parse(config),
             "accepted: #{inspect(config)}"
    end

    refute File.exists?(marker)
  end

  test "to_json/1 makes terms JSON-friendly" do
    assert Metadata.to_json([{"a", true}, {"b", nil}]) == %{"a" => true, "b" => nil}
    assert Metadata.to_json({1, :atom}) == [1, "atom"]
    assert Metadata.to_json(<<255>>) == Base.encode64(<<255>>)
    assert Metadata.to_json([]) == []
  end

  test "the outer tarball must hold exactly the four entries" do
    dir = Tmp.dir!()
    path = Path.join(dir, "pkg.tar")
    File.write!(path, HexFixtures.tarball("x", "1.0.0", outer: [{:file, "extra", "x"}]))
    assert {:error, {:bad_archive, detail}} = Tarball.open(path, dir)
    assert detail =~ "must hold exactly VERSION, CHECKSUM, metadata.config and contents.tar.gz"

    File.write!(path, HexFixtures.tarball("x", "1.0.0", checksum: String.duplicate("0", 64)))
    assert {:error, {:checksum_mismatch, "inner CHECKSUM" <> _}} = Tarball.open(path, dir)

    File.write!(path, HexFixtures.tarball("x", "1.0.0"))
    assert {:ok, %{metadata: %{"name" => "x"}, contents: contents}} = Tarball.open(path, dir)
    assert File.exists?(contents)
  end
end
