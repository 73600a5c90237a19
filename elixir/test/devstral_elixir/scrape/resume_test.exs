defmodule DevstralElixir.Scrape.ResumeTest do
  use ExUnit.Case, async: true

  import DevstralElixir.Test.Eventually

  alias DevstralElixir.Scrape.{Hex, Manifest}
  alias DevstralElixir.Test.Scrape.{FakeHex, Tmp}

  @moduletag :capture_log

  @names for i <- 1..8, do: "pkg#{i}"

  defp opts(fake, out) do
    [
      out: out,
      api_url: fake.api_url,
      repo_url: fake.repo_url,
      api_interval_ms: 0,
      concurrency: 2,
      http: [backoff_base_ms: 1, max_retries: 1]
    ]
  end

  test "a run killed midway resumes with nothing duplicated and nothing missing" do
    root = Tmp.dir!()
    out = Path.join(root, "out")
    manifest = Manifest.path(out)

    # Downloads of pkg4 and later hang until the gate opens, so the first
    # run is stopped with three packages done and two in flight.
    fake =
      FakeHex.start(Enum.map(@names, &FakeHex.package(&1, "1.0.0")), gated: Enum.drop(@names, 3))

    test = self()
    run = spawn(fn -> send(test, {:finished, Hex.run(opts(fake, out))}) end)
    ref = Process.monitor(run)

    eventually(fn -> length(Manifest.read_rows(manifest)) >= 3 end, 10_000)
    # Both remaining slots are now waiting on a download.
    eventually(fn -> length(File.ls!(Path.join(out, ".tmp"))) == 2 end, 10_000)

    Process.exit(run, :kill)
    assert_receive {:DOWN, ^ref, :process, ^run, :killed}
    refute_received {:finished, _}

    first = Manifest.read_rows(manifest)
    assert first |> Enum.map(& &1["name"]) |> Enum.sort() == ~w(pkg1 pkg2 pkg3)
    # Half-done work stayed in .tmp; no package directory was published without its row.
    published = out |> File.ls!() |> Enum.filter(&String.starts_with?(&1, "pkg"))
    assert Enum.sort(published) == ~w(pkg1-1.0.0 pkg2-1.0.0 pkg3-1.0.0)

    # As if the crash had cut a row in half while writing it.
    File.write!(manifest, ~s({"name":"pkg4","vers), [:append])

    FakeHex.open_gate(fake)
    summary = Hex.run(opts(fake, out))

    assert summary.skipped_by == %{already_fetched: 3}
    assert summary.fetched == 5
    assert summary.rejected == %{}

    rows = Manifest.read_rows(manifest)
    names = Enum.map(rows, & &1["name"])
    assert Enum.sort(names) == @names
    assert length(names) == length(Enum.uniq(names))
    assert File.read!(manifest) |> String.split("\n") |> List.last() == ""

    for name <- @names,
        do: assert(File.regular?(Path.join([out, "#{name}-1.0.0", "lib/sample.ex"])))

    assert File.ls!(Path.join(out, ".tmp")) == []
    assert Enum.all?(Tmp.tree(root), &String.starts_with?(&1, "out"))

    # A third run has nothing left to do.
    again = Hex.run(opts(fake, out))
    assert again.skipped == 8 and again.fetched == 0
    assert length(Manifest.read_rows(manifest)) == 8
  end
end
