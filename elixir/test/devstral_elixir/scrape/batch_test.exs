defmodule DevstralElixir.Scrape.BatchTest do
  use ExUnit.Case, async: true

  alias DevstralElixir.Scrape.{Batch, Progress}
  alias DevstralElixir.Test.Scrape.Tmp

  @moduletag :capture_log

  test "a crash in one package's work rejects that package only" do
    out = Tmp.dir!()
    test = self()

    work = fn
      2 -> raise "boom"
      3 -> throw(:oops)
      n -> {:ok, %{name: "p#{n}", version: "1.0.0", files: n, bytes: 10 * n, downloaded: 100}}
    end

    summary =
      Batch.run([1, 2, 3, 4], work,
        source: "test",
        out: out,
        concurrency: 2,
        progress: &send(test, &1),
        label: fn
          2 -> {"p2", "1.0.0"}
          _ -> raise "no label either"
        end
      )

    assert summary.fetched == 2
    assert summary.bytes == 50
    assert summary.downloaded_bytes == 200
    assert summary.rejected == %{internal: 2}

    assert [%{name: "p2", detail: "** (RuntimeError) boom" <> _}, %{name: "3"}] =
             Enum.sort_by(summary.failures, & &1.name, :desc)

    assert File.read!(Path.join(out, "skipped.jsonl"))
           |> String.split("\n", trim: true)
           |> length() == 2

    indexes = for {:package, %{index: i}} <- Process.info(self(), :messages) |> elem(1), do: i
    assert Enum.sort(indexes) == [1, 2, 3, 4]

    assert Progress.format_summary(summary) =~
             "test: fetched 2, skipped 0, rejected 2 (internal 2), 50 bytes kept, 200 bytes downloaded -> #{out}"
  end

  test "progress lines" do
    assert Progress.format(%{
             index: 12,
             total: 100,
             name: "jason",
             version: "1.4.4",
             status: :ok,
             files: 23
           }) ==
             "[12/100] jason 1.4.4 ok 23 files"

    assert Progress.format(%{
             index: 1,
             total: 2,
             name: "x",
             version: "1.0.0",
             status: :rejected,
             reason: :license,
             detail: "GPL"
           }) ==
             "[1/2] x 1.0.0 rejected license: GPL"

    assert Progress.format(%{
             index: 2,
             total: 2,
             name: "y",
             version: nil,
             status: :skipped,
             reason: :already_fetched
           }) ==
             "[2/2] y skipped already_fetched"
  end
end
