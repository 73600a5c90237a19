defmodule DevstralElixir.Scrape.HexTest do
  use ExUnit.Case, async: true

  import ExUnit.CaptureLog

  alias DevstralElixir.Scrape.{Hex, Manifest, Progress}
  alias DevstralElixir.Test.Scrape.{FakeHex, HexFixtures, TarBuilder, Tmp}

  @moduletag :capture_log

  setup do
    root = Tmp.dir!()
    %{root: root, out: Path.join(root, "out")}
  end

  # Waits are reported to the test instead of slept, so retries and
  # rate-limit waits cost nothing and can be checked.
  defp run(fake, out, extra \\ []) do
    test = self()

    opts =
      [
        out: out,
        api_url: fake.api_url,
        repo_url: fake.repo_url,
        api_interval_ms: 0,
        http: [
          sleep: &send(test, {:slept, &1}),
          backoff_base_ms: 10,
          max_retries: 2,
          timeout_ms: 5_000
        ]
      ] ++ extra

    Hex.run(opts, fn event -> send(test, {:progress, event}) end)
  end

  defp progress_events do
    receive do
      {:progress, {:package, event}} -> [event | progress_events()]
      {:progress, {:done, _}} -> progress_events()
    after
      0 -> []
    end
  end

  defp sample(extra), do: HexFixtures.sample_entries() ++ extra

  test "every hostile or broken package is rejected with its reason and the run goes on", %{
    root: root,
    out: out
  } do
    outside = Path.join(root, "escaped.ex")
    dotdot = "../../../../../escaped_dotdot.ex"
    good_tar = HexFixtures.tarball("retired_pkg", "1.0.0")

    {gz, tar} =
      {TarBuilder.tgz(HexFixtures.sample_entries()), TarBuilder.tar(HexFixtures.sample_entries())}

    packages = [
      FakeHex.package("good_a", "1.0.0"),
      FakeHex.package("good_b", "1.0.0", licenses: ["Apache-2.0"]),
      FakeHex.package("limited", "1.0.0"),
      %{
        name: "retired_pkg",
        releases: [
          %{version: "1.0.0", tarball: good_tar},
          %{version: "2.0.0", tarball: good_tar, retirement: %{"reason" => "security"}},
          %{version: "2.1.0-rc.1", tarball: good_tar}
        ]
      },
      %{
        name: "bad_checksum",
        releases: [
          %{
            version: "1.0.0",
            tarball: HexFixtures.tarball("bad_checksum", "1.0.0"),
            checksum: String.duplicate("ab", 32)
          }
        ]
      },
      FakeHex.package("dotdot", "1.0.0", entries: sample([{:file, dotdot, "evil"}])),
      FakeHex.package("absolute", "1.0.0", entries: sample([{:file, outside, "evil"}])),
      FakeHex.package("symlink", "1.0.0",
        entries: sample([{:symlink, "lib/passwd.ex", "/etc/passwd"}])
      ),
      FakeHex.package("hardlink", "1.0.0",
        entries: sample([{:hardlink, "lib/other.ex", "/etc/passwd"}])
      ),
      FakeHex.package("device", "1.0.0", entries: sample([{:char, "lib/tty.ex"}])),
      FakeHex.package("too_big", "1.0.0",
        entries: sample([{:file, "lib/big.ex", :binary.copy("a", 80_000)}])
      ),
      FakeHex.package("truncated_gz", "1.0.0", contents: binary_part(gz, 0, div(byte_size(gz), 2))),
      FakeHex.package("truncated_tar", "1.0.0", contents: :zlib.gzip(binary_part(tar, 0, 700))),
      FakeHex.package("version2", "1.0.0", version_file: "2"),
      FakeHex.package("bad_meta", "1.0.0",
        metadata: ~s({<<"name">>,<<"bad_meta">>}.\n{<<"version">>, <<"1.0.0">>\n)
      ),
      FakeHex.package("gpl", "1.0.0", licenses: ["GPL-3.0"]),
      FakeHex.package("html", "1.0.0"),
      FakeHex.package("dropped", "1.0.0"),
      FakeHex.package("down", "1.0.0"),
      FakeHex.package("../evil", "1.0.0")
    ]

    fake = FakeHex.start(packages)
    FakeHex.script(fake, {:tarball, "good_b", "1.0.0"}, [500])
    FakeHex.script(fake, {:tarball, "limited", "1.0.0"}, [{:rate_limited, 2}])
    FakeHex.script(fake, {:package, "html"}, {:always, :html})
    FakeHex.script(fake, {:tarball, "dropped", "1.0.0"}, {:always, :drop})
    FakeHex.script(fake, {:release, "down", "1.0.0"}, {:always, 500})

    log = capture_log(fn -> send(self(), {:summary, run(fake, out, max_bytes: 64_000)}) end)
    assert_received {:summary, summary}

    assert summary.fetched == 4
    assert summary.total == length(packages)

    assert summary.rejected == %{
             checksum_mismatch: 1,
             unsafe_path: 2,
             symlink: 1,
             hard_link: 1,
             device_file: 1,
             too_large: 1,
             truncated: 2,
             bad_version: 1,
             malformed_metadata: 1,
             license: 1,
             bad_json: 1,
             download_failed: 1,
             server_error: 1,
             invalid_name: 1
           }

    # Each rejection is logged with the package and a reason that says what was wrong.
    for {name, text} <- [
          {"bad_checksum", "checksum_mismatch: the tarball's SHA-256 is"},
          {"dotdot", "unsafe_path: entry \"#{dotdot}\" has a '..' component"},
          {"absolute", "unsafe_path: entry \"#{outside}\" has an absolute path"},
          {"symlink", "symlink: entry \"lib/passwd.ex\" is a symbolic link"},
          {"hardlink", "hard_link: entry \"lib/other.ex\" is a hard link"},
          {"device", "device_file: entry \"lib/tty.ex\""},
          {"too_big",
           "too_large: entry \"lib/big.ex\" takes the files past the 64000-byte total cap"},
          {"truncated_gz", "truncated: gzip stream ends early"},
          {"truncated_tar", "truncated: the tar archive ends early"},
          {"version2", "bad_version: VERSION is \"2\", expected \"3\""},
          {"bad_meta", "malformed_metadata: metadata.config"},
          {"gpl", "license: licence GPL-3.0 is not in the allowed list"},
          {"html",
           "bad_json: GET #{fake.api_url}/packages/html: expected JSON, got content-type text/html"},
          {"dropped",
           "download_failed: GET #{fake.repo_url}/tarballs/dropped-1.0.0.tar: connection dropped after"},
          {"down",
           "server_error: GET #{fake.api_url}/packages/down/releases/1.0.0: status 500 (gave up after 3 attempts)"}
        ] do
      assert log =~ "hex: rejected #{name} 1.0.0: #{text}",
             "no clear reason logged for #{name}:\n#{log}"
    end

    assert log =~ ~s(hex: rejected "../evil" : invalid_name)

    # The 429 waited for the reset time (about 2 s ahead) before the retry.
    assert_received {:slept, wait} when wait > 1_000 and wait <= 2_500

    # Nothing was written outside --out, and no work is left behind.
    assert Enum.all?(Tmp.tree(root), &String.starts_with?(&1, "out"))
    refute File.exists?(outside)
    assert File.ls!(Path.join(out, ".tmp")) == []

    dirs = out |> File.ls!() |> Enum.reject(&String.starts_with?(&1, ".")) |> Enum.sort()

    assert dirs == [
             "good_a-1.0.0",
             "good_b-1.0.0",
             "limited-1.0.0",
             "manifest.jsonl",
             "retired_pkg-1.0.0",
             "skipped.jsonl"
           ]

    assert Tmp.tree(Path.join(out, "good_a-1.0.0")) == [
             "LICENSE",
             "README.md",
             "lib",
             "lib/sample",
             "lib/sample.ex",
             "lib/sample/helper.ex",
             "metadata.json",
             "mix.exs",
             "test",
             "test/sample_spec.exs"
           ]

    metadata =
      Path.join([out, "good_a-1.0.0", "metadata.json"])
      |> File.read!()
      |> :jiffy.decode([:return_maps])

    assert metadata["name"] == "good_a"
    assert metadata["version"] == "1.0.0"
    assert metadata["licenses"] == ["MIT"]
    assert metadata["links"] == %{"GitHub" => "https://github.com/example/good_a"}
    assert metadata["sha256"] == HexFixtures.checksum(HexFixtures.tarball("good_a", "1.0.0"))
    assert metadata["source_url"] == "#{fake.repo_url}/tarballs/good_a-1.0.0.tar"
    assert metadata["downloads"]["all"] == 1_000
    assert metadata["requirements"]["jason"]["requirement"] == "~> 1.0"
    assert metadata["description"] == "The good_a fixture package."
    assert {:ok, _, _} = DateTime.from_iso8601(metadata["fetched_at"])

    rows = Manifest.read_rows(Manifest.path(out))
    assert rows |> Enum.map(& &1["name"]) |> Enum.sort() == ~w(good_a good_b limited retired_pkg)
    good_a = Enum.find(rows, &(&1["name"] == "good_a"))
    assert good_a["files"] == HexFixtures.sample_kept()
    assert good_a["path"] == "good_a-1.0.0"
    assert good_a["licenses"] == ["MIT"]
    assert good_a["sha256"] == metadata["sha256"]

    # The retired latest release and the pre-release were passed over.
    assert Enum.find(rows, &(&1["name"] == "retired_pkg"))["version"] == "1.0.0"

    skipped = out |> Path.join("skipped.jsonl") |> File.read!() |> String.split("\n", trim: true)
    assert length(skipped) == 16

    events = progress_events()
    assert length(events) == length(packages)
    line = events |> Enum.find(&(&1.name == "good_a")) |> Progress.format()
    assert line =~ ~r"^\[\d+/20\] good_a 1\.0\.0 ok 6 files$"

    assert Enum.all?(
             FakeHex.requests(fake),
             &String.starts_with?(&1.headers["user-agent"], "devstral_elixir")
           )
  end

  test "a rerun revalidates the listing with its ETag and skips what is done", %{out: out} do
    fake = FakeHex.start([FakeHex.package("one", "1.0.0"), FakeHex.package("two", "0.2.0")])
    FakeHex.script(fake, :listing, [{:rate_limited, 1}])

    first = run(fake, out)
    assert first.fetched == 2
    # The listing's 429 waited for the reset before retrying.
    assert_received {:slept, wait} when wait > 0

    second = run(fake, out)
    assert second.fetched == 0
    assert second.skipped == 2
    assert second.skipped_by == %{already_fetched: 2}

    listings = Enum.filter(FakeHex.requests(fake), &(&1.path == "/api/packages"))
    assert [_limited, first_listing, second_listing] = listings
    refute Map.has_key?(first_listing.headers, "if-none-match")
    assert second_listing.headers["if-none-match"] =~ ~r/^"[0-9a-f]+"$/
    assert length(Manifest.read_rows(Manifest.path(out))) == 2
  end

  test "selection: limit, minimum downloads, update date, pages and all versions", %{out: out} do
    packages =
      for {name, downloads, updated} <- [
            {"alpha", 5_000, "2024-05-01T00:00:00Z"},
            {"beta", 10, "2024-05-01T00:00:00Z"},
            {"gamma", 5_000, "2019-01-01T00:00:00Z"},
            {"delta", 9_000, "2024-07-01T00:00:00Z"},
            {"epsilon", 9_000, "2024-07-01T00:00:00Z"}
          ] do
        name
        |> FakeHex.package("1.0.0")
        |> Map.merge(%{downloads: downloads, updated_at: updated})
      end

    multi = %{
      name: "multi",
      downloads: 5_000,
      updated_at: "2024-07-01T00:00:00Z",
      releases: [
        %{version: "0.1.0", tarball: HexFixtures.tarball("multi", "0.1.0")},
        %{version: "0.2.0-rc.1", tarball: HexFixtures.tarball("multi", "0.2.0-rc.1")},
        %{version: "0.2.0", tarball: HexFixtures.tarball("multi", "0.2.0")}
      ]
    }

    fake = FakeHex.start(packages ++ [multi], page_size: 2)

    summary =
      run(fake, out,
        min_downloads: 1_000,
        updated_since: ~D[2024-01-01],
        limit: 3,
        sort: "name",
        page_size: 2
      )

    rows = Manifest.read_rows(Manifest.path(out))

    assert rows |> Enum.map(&{&1["name"], &1["version"]}) |> Enum.sort() ==
             [
               {"alpha", "1.0.0"},
               {"delta", "1.0.0"},
               {"epsilon", "1.0.0"}
             ]

    assert summary.total == 3

    # Page 3 (epsilon, multi) was needed to reach the limit; nothing further.
    pages = for %{path: "/api/packages", query: q} <- FakeHex.requests(fake), do: q["page"]
    assert pages == ["1", "2", "3"]
    assert Enum.all?(FakeHex.requests(fake), &(&1.query == %{} or &1.query["sort"] == "name"))

    all = run(fake, Path.join(out, "all"), all_versions: true, page_size: 2)

    versions =
      for row <- Manifest.read_rows(Manifest.path(Path.join(out, "all"))),
          row["name"] == "multi",
          do: row["version"]

    assert Enum.sort(versions) == ["0.1.0", "0.2.0", "0.2.0-rc.1"]
    assert all.fetched == 8
  end

  test "options are checked" do
    assert_raise ArgumentError, ~r/unknown keys \[:bogus\]/, fn -> Hex.options(bogus: 1) end
    assert_raise ArgumentError, ~r/sort must be one of/, fn -> Hex.options(sort: "stars") end
  end

  test "versions/2 picks the latest stable, non-retired release" do
    package = %{
      "releases" => [
        %{"version" => "1.2.0"},
        %{"version" => "1.10.0"},
        %{"version" => "2.0.0-rc.0"},
        %{"version" => "1.11.0"},
        %{"version" => "../../x"}
      ],
      "retirements" => %{"1.11.0" => %{"reason" => "invalid"}}
    }

    assert Hex.versions(package, false) == {:ok, ["1.10.0"]}
    assert Hex.versions(package, true) == {:ok, ["2.0.0-rc.0", "1.10.0", "1.2.0"]}
    assert {:error, {:no_release, _}} = Hex.versions(%{"releases" => []}, false)
  end
end
