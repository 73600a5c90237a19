defmodule DevstralElixir.Rag.IngestRunnerTest do
  use ExUnit.Case, async: true

  alias DevstralElixir.Proto.IngestRequest
  alias DevstralElixir.Rag.IngestRunner

  test "args become an IngestRequest; bad args name the field" do
    dir = System.tmp_dir!()

    assert IngestRunner.request(%{"paths" => [dir], "collection" => "docs"}, "job-1-ingest") ==
             {:ok, %IngestRequest{job_id: "job-1-ingest", paths: [dir], collection: "docs"}}

    assert {:ok, %IngestRequest{collection: ""}} = IngestRunner.request(%{"paths" => [dir]}, "j")

    for {args, text} <- [
          {%{}, "paths must be a non-empty list"},
          {%{"paths" => []}, "paths must be a non-empty list"},
          {%{"paths" => "x"}, "paths must be a non-empty list"},
          {%{"paths" => ["relative/dir"]}, ~s(paths: "relative/dir" is not an absolute path)},
          {%{"paths" => ["/no/such/log.jsonl"]}, "paths: /no/such/log.jsonl does not exist"},
          {%{"paths" => [1]}, "paths must hold strings"},
          {%{"paths" => [dir], "collection" => "a/b"}, "collection must be a name"}
        ] do
      assert {:error, message} = IngestRunner.request(args, "j")
      assert message =~ text
      assert IngestRunner.validate_args(args) == {:error, message}
    end
  end

  test "skipped lines are the LOG events that say so" do
    assert IngestRunner.skipped?(%{kind: "LOG", message: "skipped /a.jsonl:3: bad JSON"})
    refute IngestRunner.skipped?(%{kind: "LOG", message: "read /a.jsonl"})
    refute IngestRunner.skipped?(%{kind: "PROGRESS", message: "skipped /a.jsonl:3: x"})
  end
end
