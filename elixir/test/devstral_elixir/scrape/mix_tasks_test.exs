defmodule DevstralElixir.Scrape.MixTasksTest do
  # Sets HEX_API_URL / HEX_MIRROR / GITHUB_TOKEN, which are global.
  use ExUnit.Case, async: false

  import ExUnit.CaptureIO

  alias DevstralElixir.Scrape.Manifest
  alias DevstralElixir.Test.Scrape.{FakeGitHub, FakeHex, HexFixtures, Tmp}

  @moduletag :capture_log

  setup do
    Mix.shell(Mix.Shell.Process)
    on_exit(fn -> Mix.shell(Mix.Shell.IO) end)
    %{out: Path.join(Tmp.dir!(), "out")}
  end

  test "bad flags are refused with the flag named" do
    for {task, args, message} <- [
          {Mix.Tasks.Scrape.Hex, ["--bogus"], "mix scrape.hex: unknown option --bogus"},
          {Mix.Tasks.Scrape.Hex, ["--limit", "many"],
           ~s(mix scrape.hex: invalid value "many" for --limit)},
          {Mix.Tasks.Scrape.Hex, ["--limit", "0"], "--limit must be a positive integer"},
          {Mix.Tasks.Scrape.Hex, ["--sort", "stars"], "--sort must be one of recent_downloads"},
          {Mix.Tasks.Scrape.Hex, ["--updated-since", "2024-13-01"],
           "--updated-since must be a date"},
          {Mix.Tasks.Scrape.Hex, ["extra"], "unexpected arguments extra"},
          {Mix.Tasks.Scrape.Github, ["--min-stars", "-1"], "--min-stars must not be negative"},
          {Mix.Tasks.Scrape.Github, ["--token", "x"], "unknown option --token"},
          {Mix.Tasks.Scrape.Local, [], "give at least one directory"},
          {Mix.Tasks.Scrape.Docs, ["--apps"], "mix scrape.docs: --apps needs a value"}
        ] do
      error = assert_raise Mix.Error, fn -> task.run(args) end
      assert error.message =~ message
    end
  end

  test "mix scrape.hex reads HEX_API_URL and HEX_MIRROR and prints progress and a summary", %{
    out: out
  } do
    fake =
      FakeHex.start([
        FakeHex.package("alpha", "1.0.0"),
        FakeHex.package("beta", "2.0.0", licenses: ["GPL-2.0"])
      ])

    put_env(%{"HEX_API_URL" => fake.api_url, "HEX_MIRROR" => fake.repo_url})

    output =
      capture_io(fn ->
        Mix.Tasks.Scrape.Hex.run(["--out", out, "--requests-per-minute", "60000"])
      end)

    assert output =~ ~r"^\[\d/2\] alpha 1\.0\.0 ok 6 files$"m

    assert output =~
             ~r"^\[\d/2\] beta 2\.0\.0 rejected license: licence GPL-2\.0 is not in the allowed list$"m

    assert output =~ "hex: fetched 1, skipped 0, rejected 1 (license 1)"
    assert length(Manifest.read_rows(Manifest.path(out))) == 1
  end

  test "mix scrape.hex fails clearly when the listing is unreachable", %{out: out} do
    fake = FakeHex.start([])
    FakeHex.script(fake, :listing, {:always, :html})

    error =
      assert_raise Mix.Error, fn ->
        capture_io(fn ->
          Mix.Tasks.Scrape.Hex.run([
            "--out",
            out,
            "--api-url",
            fake.api_url,
            "--requests-per-minute",
            "60000"
          ])
        end)
      end

    assert error.message =~ "nothing was scraped: listing page 1: bad_json"
  end

  test "mix scrape.github uses GITHUB_TOKEN", %{out: out} do
    fake = FakeGitHub.start([%{full_name: "acme/app", stars: 50}])
    put_env(%{"GITHUB_TOKEN" => "from-env"})

    output =
      capture_io(fn ->
        Mix.Tasks.Scrape.Github.run(
          ~w(--out #{out} --api-url #{fake.api_url} --hex-manifest #{out}/none.jsonl --searches-per-minute 60000 --requests-per-minute 60000)
        )
      end)

    assert output =~ ~r"^\[1/1\] acme/app [0-9a-f]{7} ok 6 files$"m

    assert Enum.all?(
             FakeGitHub.requests(fake),
             &(&1.path =~ "/codeload/" or &1.headers["authorization"] == "Bearer from-env")
           )
  end

  test "mix scrape.local and mix scrape.docs", %{out: out} do
    sample = Path.join(HexFixtures.fixtures(), "sample")
    output = capture_io(fn -> Mix.Tasks.Scrape.Local.run([sample, "--out", out]) end)
    assert output =~ ~r"^\[1/1\] sample [0-9a-f]{12} ok 6 files$"m
    assert output =~ "local: fetched 1"

    docs = Path.join(out, "docs")
    output = capture_io(fn -> Mix.Tasks.Scrape.Docs.run(["--apps", "eex", "--out", docs]) end)
    assert output =~ ~r"^\[1/1\] eex \S+ ok \d+ files$"m
  end

  defp put_env(vars) do
    previous = Map.new(vars, fn {k, _} -> {k, System.get_env(k)} end)
    System.put_env(vars)

    on_exit(fn ->
      Enum.each(previous, fn
        {k, nil} -> System.delete_env(k)
        {k, v} -> System.put_env(k, v)
      end)
    end)
  end
end
