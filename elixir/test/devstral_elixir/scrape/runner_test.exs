defmodule DevstralElixir.Scrape.RunnerTest do
  use ExUnit.Case, async: true

  alias DevstralElixir.Jobs.Job
  alias DevstralElixir.Scrape.Runner
  alias DevstralElixir.Test.Scrape.{HexFixtures, Tmp}

  test "the mix tasks' options become JSON-shaped args, paths expanded" do
    args = Runner.args("hex", out: "raw/hex", updated_since: ~D[2024-01-31], limit: 5)

    assert args == %{
             "source" => "hex",
             "out" => Path.expand("raw/hex"),
             "updated_since" => "2024-01-31",
             "limit" => 5
           }

    assert Runner.validate_args(args) == :ok
    assert Runner.args("local", [], ["a"])["paths"] == [Path.expand("a")]
  end

  test "bad args are refused at enqueue, naming the problem" do
    for {args, message} <- [
          {%{"source" => "cpan"}, ~s(source must be one of docs, github, hex, local, got "cpan")},
          {%{"source" => "hex", "colour" => 1}, "scrape hex: unknown option(s) colour; known: "},
          {%{"source" => "hex", "token" => "x"}, "unknown option(s) token"},
          {%{"source" => "local"}, ~s(a local scrape needs "paths")},
          {%{"source" => "docs", "paths" => ["a"]}, ~s(scrape docs: "paths" is for local only)},
          {%{"source" => "hex", "sort" => "stars"}, "scrape hex: sort must be one of"},
          {%{"source" => "github", "pushed_since" => "2024-13-01"},
           "pushed_since must be a date like 2024-01-31"}
        ] do
      assert {:error, error} = Runner.validate_args(args)
      assert error =~ message
    end
  end

  test "a run reports each package as a LOG line and returns the summary" do
    out = Path.join(Tmp.dir!(), "out")
    sample = Path.join(HexFixtures.fixtures(), "sample")
    test = self()
    job = %Job{id: 1, type: :scrape, args: Runner.args("local", [out: out], [sample])}

    assert {:ok, result} = Runner.run(job, &send(test, {:progress, &1}))
    assert result.fetched == 1
    assert result.summary =~ "local: fetched 1"

    assert_received {:progress,
                     %{"kind" => "LOG", "message" => "[1/1] sample " <> _, "step" => 1}}

    assert {:discard, _} = Runner.run(%{job | args: %{"source" => "local"}}, fn _ -> :ok end)
  end
end
