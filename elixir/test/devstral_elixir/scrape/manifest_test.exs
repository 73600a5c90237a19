defmodule DevstralElixir.Scrape.ManifestTest do
  use ExUnit.Case, async: true

  alias DevstralElixir.Scrape.Manifest
  alias DevstralElixir.Test.Scrape.Tmp

  @moduletag :capture_log

  test "rows appended concurrently are all intact" do
    path = Path.join(Tmp.dir!(), "m/manifest.jsonl")

    1..40
    |> Task.async_stream(
      &Manifest.append(path, %{
        "name" => "p#{&1}",
        "version" => "1.0.0",
        "pad" => String.duplicate("x", 3_000)
      }),
      max_concurrency: 8
    )
    |> Stream.run()

    index = Manifest.load(path)
    assert map_size(index) == 40
    assert Map.has_key?(index, {"p7", "1.0.0"})
    assert length(String.split(File.read!(path), "\n", trim: true)) == 40
  end

  test "a truncated last line is ignored by readers and cut off by load/1" do
    path = Path.join(Tmp.dir!(), "manifest.jsonl")
    Manifest.append(path, %{"name" => "a", "version" => "1"})
    File.write!(path, ~s({"name":"b","ver), [:append])

    assert [%{"name" => "a"}] = Manifest.read_rows(path)
    # read_rows/1 never writes.
    assert File.read!(path) =~ ~s("ver)

    assert Map.keys(Manifest.load(path)) == [{"a", "1"}]
    assert [line] = String.split(File.read!(path), "\n", trim: true)
    assert String.ends_with?(File.read!(path), "}\n")
    assert :jiffy.decode(line, [:return_maps]) == %{"name" => "a", "version" => "1"}

    Manifest.append(path, %{"name" => "b", "version" => "2"})
    assert Manifest.read_rows(path) |> Enum.map(& &1["name"]) == ["a", "b"]
  end

  test "malformed lines are skipped and a missing manifest is empty" do
    dir = Tmp.dir!()
    assert Manifest.load(Path.join(dir, "none.jsonl")) == %{}

    path = Path.join(dir, "manifest.jsonl")
    File.write!(path, ~s(not json\n{"name":1,"version":"x"}\n{"name":"ok","version":"1"}\n\n))
    assert [%{"name" => "ok"}] = Manifest.read_rows(path)
  end
end
