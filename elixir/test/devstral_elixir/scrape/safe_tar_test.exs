defmodule DevstralElixir.Scrape.SafeTarTest do
  use ExUnit.Case, async: true

  alias DevstralElixir.Scrape.SafeTar
  alias DevstralElixir.Test.Scrape.{HexFixtures, TarBuilder, Tmp}

  setup do
    %{dir: Tmp.dir!()}
  end

  defp extract(dir, entries, opts \\ []) do
    tgz = Path.join(dir, "in.tar.gz")
    File.write!(tgz, TarBuilder.tgz(entries))
    SafeTar.extract_tgz(tgz, Path.join(dir, "dest"), opts)
  end

  test "keeps source, docs and licences; drops assets and binaries; resets modes", %{dir: dir} do
    entries =
      HexFixtures.sample_entries() ++
        [
          {:dir, "lib/empty/"},
          {:file, "bin/setuid.ex", "IO.puts(:hi)\n", 0o4755},
          {:file, "lib/blob.ex", <<"defmodule", 0, 1, 2>>},
          {:file, "./docs/./guide.cheatmd", "# Guide\n"},
          {:file, "deps/other/lib/other.ex", "vendored"}
        ]

    assert {:ok, result} = extract(dir, entries)
    dest = Path.join(dir, "dest")

    assert result.files == [
             "LICENSE",
             "README.md",
             "bin/setuid.ex",
             "docs/guide.cheatmd",
             "lib/sample.ex",
             "lib/sample/helper.ex",
             "mix.exs",
             "test/sample_spec.exs"
           ]

    assert result.bytes ==
             Enum.sum(for f <- result.files, do: File.stat!(Path.join(dest, f)).size)

    assert File.stat!(Path.join(dest, "bin/setuid.ex")).mode |> Bitwise.band(0o7777) == 0o644
    refute File.exists?(Path.join(dest, "lib/blob.ex"))
    refute File.exists?(Path.join(dest, "priv"))
    assert Tmp.tree(dir) |> Enum.reject(&String.starts_with?(&1, "dest")) == ["in.tar.gz"]
  end

  test "strips the single top-level directory of a GitHub tarball and skips its pax header", %{
    dir: dir
  } do
    entries = [
      {:pax_global, "52 comment=abc"},
      {:dir, "o-r-abc1234/"},
      {:file, "o-r-abc1234/lib/a.ex", "a"}
    ]

    assert {:ok, %{files: ["lib/a.ex"], top: "o-r-abc1234"}} =
             extract(dir, entries, strip_components: 1)

    assert File.read!(Path.join(dir, "dest/lib/a.ex")) == "a"

    assert {:error, {:bad_layout, _}} =
             extract(Tmp.dir!(), [{:file, "a/x.ex", "1"}, {:file, "b/y.ex", "2"}],
               strip_components: 1
             )
  end

  test "an archive with nothing to keep gives an empty directory", %{dir: dir} do
    assert {:ok, %{files: [], bytes: 0}} = extract(dir, [{:file, "logo.png", "png"}])
    assert File.ls!(Path.join(dir, "dest")) == []
  end

  for {label, entry, reason} <- [
        {"absolute path", {:file, "/etc/cron.d/evil.ex", "x"}, :unsafe_path},
        {"dot-dot", {:file, "lib/../../evil.ex", "x"}, :unsafe_path},
        {"symlink", {:symlink, "lib/link.ex", "../../../../etc/passwd"}, :symlink},
        {"hard link", {:hardlink, "lib/link.ex", "lib/sample.ex"}, :hard_link},
        {"device", {:char, "lib/dev.ex"}, :device_file}
      ] do
    test "rejects a #{label} and writes nothing", %{dir: dir} do
      assert {:error, {unquote(reason), detail}} =
               extract(dir, HexFixtures.sample_entries() ++ [unquote(Macro.escape(entry))])

      assert detail =~ "entry"
      assert Tmp.tree(dir) == ["in.tar.gz"]
    end
  end

  test "caps: total size, file size, entry count, and a gzip bomb", %{dir: dir} do
    big = [
      {:file, "lib/a.ex", :binary.copy("a", 3_000)},
      {:file, "lib/b.ex", :binary.copy("b", 3_000)}
    ]

    assert {:error, {:too_large, _}} = extract(dir, big, max_bytes: 5_000)
    assert {:error, {:too_large, detail}} = extract(Tmp.dir!(), big, max_file_bytes: 2_000)
    assert detail =~ ~s(entry "lib/a.ex" is 3000 bytes)
    assert {:error, {:too_many_files, _}} = extract(Tmp.dir!(), big, max_files: 1)

    # 20 MB of zeros compress to about 20 KB; decompression stops at the cap.
    bomb_dir = Tmp.dir!()
    bomb = Path.join(bomb_dir, "bomb.tar.gz")

    File.write!(
      bomb,
      :zlib.gzip(TarBuilder.tar([{:file, "lib/zero.ex", :binary.copy(<<0>>, 20_000_000)}]))
    )

    assert {:error, {:too_large, detail}} =
             SafeTar.extract_tgz(bomb, Path.join(bomb_dir, "dest"), max_bytes: 100_000)

    assert detail =~ "uncompressed archive is over"
    assert Tmp.tree(bomb_dir) == ["bomb.tar.gz"]
  end

  test "truncated and corrupt archives", %{dir: dir} do
    tar = TarBuilder.tar(HexFixtures.sample_entries())
    gz = :zlib.gzip(tar)

    for {name, data, reason} <- [
          {"short.tar.gz", binary_part(gz, 0, div(byte_size(gz), 2)), :truncated},
          {"short_tar.tar.gz", :zlib.gzip(binary_part(tar, 0, 1_000)), :truncated},
          {"plain.tar.gz", "this is not gzip at all", :bad_archive}
        ] do
      path = Path.join(dir, name)
      File.write!(path, data)
      assert {:error, {^reason, _}} = SafeTar.extract_tgz(path, Path.join(dir, name <> ".dest"))
    end
  end

  test "safe_path/1 normalises names and refuses unsafe ones" do
    assert SafeTar.safe_path('./lib//a.ex') == {:ok, "lib/a.ex"}
    assert SafeTar.safe_path("a/./b/") == {:ok, "a/b"}
    assert {:error, {:unsafe_path, _}} = SafeTar.safe_path("/abs")
    assert {:error, {:unsafe_path, _}} = SafeTar.safe_path("a/../../b")
    assert {:error, {:unsafe_path, _}} = SafeTar.safe_path("..")
    assert {:error, {:unsafe_path, _}} = SafeTar.safe_path("./")
    assert {:error, {:unsafe_path, _}} = SafeTar.safe_path(<<"a", 0, "b">>)
  end
end
