defmodule DevstralElixir.Scrape.GitHubTest do
  use ExUnit.Case, async: true

  import ExUnit.CaptureLog

  alias DevstralElixir.Scrape.{GitHub, Manifest}
  alias DevstralElixir.Scrape.GitHub.Search
  alias DevstralElixir.Test.Scrape.{FakeGitHub, HexFixtures, Tmp}

  @moduletag :capture_log

  setup do
    root = Tmp.dir!()
    hex_manifest = Path.join(root, "hex/manifest.jsonl")

    # A Hex package already scraped whose source is acme/jason_src.
    Manifest.append(hex_manifest, %{
      "name" => "jason_src",
      "version" => "1.0.0",
      "links" => %{
        "GitHub" => "https://github.com/Acme/Jason_Src.git",
        "Docs" => "https://hexdocs.pm/x"
      }
    })

    %{root: root, out: Path.join(root, "out"), hex_manifest: hex_manifest}
  end

  defp run(fake, ctx, extra \\ []) do
    test = self()

    opts =
      [
        out: ctx.out,
        api_url: fake.api_url,
        token: "secret-token",
        hex_manifest: ctx.hex_manifest,
        min_stars: 10,
        per_page: 2,
        result_cap: 3,
        search_interval_ms: 0,
        core_interval_ms: 0,
        http: [sleep: &send(test, {:slept, &1}), backoff_base_ms: 1, max_retries: 1]
      ] ++ extra

    GitHub.run(opts)
  end

  @repos [
    %{full_name: "acme/big", stars: 500},
    %{full_name: "acme/jason_src", stars: 300},
    %{full_name: "acme/mid", stars: 120},
    %{full_name: "acme/gpl", stars: 90, license: "GPL-3.0"},
    %{full_name: "acme/unlicensed", stars: 80, license: nil},
    %{
      full_name: "acme/linked",
      stars: 60,
      entries: HexFixtures.sample_entries() ++ [{:symlink, "lib/l.ex", "/etc/passwd"}]
    },
    %{
      full_name: "acme/escape",
      stars: 40,
      entries: [{:file, "lib/a.ex", "a"}, {:raw_file, "outside.ex", "x"}]
    },
    %{full_name: "acme/down", stars: 30},
    %{full_name: "acme/small", stars: 15, license: "Apache-2.0"},
    %{full_name: "acme/tiny", stars: 12, default_branch: "dev/next"},
    %{full_name: "acme/few", stars: 5}
  ]

  test "searches by star ranges, follows the tarball redirect, filters and dedups", ctx do
    fake = FakeGitHub.start(@repos, result_cap: 3)
    FakeGitHub.script(fake, :search, [{:forbidden_rate_limited, 2}])
    FakeGitHub.script(fake, {:tarball, "acme/mid"}, [{:rate_limited, 1}])
    FakeGitHub.script(fake, {:codeload, "acme/down"}, {:always, 502})

    log = capture_log(fn -> send(self(), {:summary, run(fake, ctx)}) end)
    assert_received {:summary, summary}

    # Ten repositories have 10 stars or more; each query shows at most 3.
    assert summary.total == 10
    assert summary.fetched == 4
    assert summary.skipped_by == %{duplicate_of_hex: 1}
    assert summary.rejected == %{license: 2, symlink: 1, bad_layout: 1, server_error: 1}

    assert log =~
             "github: rejected acme/gpl : license: licence GPL-3.0 is not in the allowed list"

    assert log =~ "github: rejected acme/unlicensed : license: no licence stated"
    assert log =~ "github: rejected acme/linked main: symlink"

    assert log =~
             ~s(github: rejected acme/escape main: bad_layout: entry "outside.ex" is outside the single top-level directory)

    assert log =~ "github: rejected acme/down main: server_error"

    # The search 403 and the tarball 429 both waited for their reset.
    assert_received {:slept, wait} when wait > 1_000
    assert_received {:slept, wait} when wait >= 200 and wait <= 1_300

    rows = Manifest.read_rows(Manifest.path(ctx.out))

    assert rows |> Enum.map(& &1["name"]) |> Enum.sort() ==
             ~w(acme/big acme/mid acme/small acme/tiny)

    big = Enum.find(rows, &(&1["name"] == "acme/big"))
    sha = :crypto.hash(:sha, "acme/big") |> Base.encode16(case: :lower) |> binary_part(0, 7)
    assert big["version"] == sha
    assert big["path"] == "acme-big-#{sha}"
    assert big["licenses"] == ["MIT"]
    assert big["files"] == HexFixtures.sample_kept()
    assert File.regular?(Path.join([ctx.out, big["path"], "lib/sample.ex"]))
    refute File.exists?(Path.join([ctx.out, big["path"], "priv"]))

    metadata =
      Path.join([ctx.out, big["path"], "metadata.json"])
      |> File.read!()
      |> :jiffy.decode([:return_maps])

    assert metadata["stars"] == 500
    assert metadata["ref"] == "main"
    assert metadata["source_url"] == "#{fake.api_url}/repos/acme/big/tarball/main"

    # The dedup skip is recorded.
    skipped = File.read!(Path.join(ctx.out, "skipped.jsonl"))
    assert skipped =~ ~s("name":"acme/jason_src")
    assert skipped =~ "duplicate_of_hex"
    assert skipped =~ "the source of Hex package jason_src"

    requests = FakeGitHub.requests(fake)
    searches = for %{path: "/api/search/repositories", query: q} <- requests, do: q["q"]
    assert Enum.any?(searches, &(&1 =~ "stars:>=10"))
    assert Enum.any?(searches, &(&1 =~ ~r/stars:\d+\.\.\d+/))

    assert Enum.all?(
             searches,
             &(&1 =~
                 ~r/^language:Elixir stars:\S+ fork:false archived:false pushed:>\d{4}-\d\d-\d\d$/)
           )

    # The token goes to the API only, not to the host the tarball redirect points at.
    for request <- requests do
      case request.path do
        "/api/" <> _ -> assert request.headers["authorization"] == "Bearer secret-token"
        "/codeload/" <> _ -> refute Map.has_key?(request.headers, "authorization")
      end
    end

    assert Enum.any?(requests, &(&1.target == "/api/repos/acme/tiny/tarball/dev%2Fnext"))

    assert Enum.all?(
             Tmp.tree(ctx.root),
             &(String.starts_with?(&1, "out") or String.starts_with?(&1, "hex"))
           )

    # A rerun fetches nothing again.
    again = run(fake, ctx)
    assert again.fetched == 0
    assert again.skipped_by == %{already_fetched: 4, duplicate_of_hex: 1}
    assert length(Manifest.read_rows(Manifest.path(ctx.out))) == 4
  end

  test "the limit stops the search early", ctx do
    fake = FakeGitHub.start(@repos, result_cap: 3)
    summary = run(fake, ctx, limit: 2)
    assert summary.total == 2
    assert summary.fetched == 1
    assert summary.skipped_by == %{duplicate_of_hex: 1}
  end

  test "defaults: search rate by token, query format, hex links" do
    assert GitHub.options(token: nil)[:search_interval_ms] == 6_500
    assert GitHub.options(token: "t")[:search_interval_ms] == 2_100
    assert GitHub.options(token: "")[:token] == nil

    assert Search.query({10, nil}, ~D[2024-01-02]) ==
             "language:Elixir stars:>=10 fork:false archived:false pushed:>2024-01-02"

    assert Search.query({10, 99}, ~D[2024-01-02]) =~ "stars:10..99"

    assert GitHub.github_repo("https://github.com/elixir-lang/Elixir.git") == "elixir-lang/elixir"
    assert GitHub.github_repo("git@github.com:a/b") == "a/b"
    assert GitHub.github_repo("https://gitlab.com/a/b") == nil
  end
end
