defmodule Mix.Tasks.RagTasksTest do
  use ExUnit.Case, async: true

  alias Mix.Tasks.Rag.{Ingest, Search}

  test "rag.search flags become the search body, in the API's field names" do
    assert Search.parse!(["how do supervisors restart?"]) ==
             {%{"query" => "how do supervisors restart?"}, false}

    assert Search.parse!(~w(q --collection docs --top-k 3 --min-score 0.5 --mode hybrid --json)) ==
             {%{
                "query" => "q",
                "collection" => "docs",
                "top_k" => 3,
                "min_score" => 0.5,
                "mode" => "hybrid"
              }, true}
  end

  test "rag.search errors name the flag" do
    for {argv, message} <- [
          {[], "mix rag.search: give the query"},
          {["a", "b"], "mix rag.search: give one query"},
          {["q", "--top-k", "0"],
           "mix rag.search: --top-k: top_k must be an integer from 1 to 100"},
          {["q", "--min-score", "2"], "mix rag.search: --min-score: min_score must be a number"},
          {["q", "--mode", "bm25"], "mix rag.search: --mode: mode must be one of dense, hybrid"},
          {["q", "--collection", "a/b"],
           "mix rag.search: --collection: collection must be a name"},
          {["q", "--top-k", "many"], ~s(mix rag.search: invalid value "many" for --top-k)},
          {["  "], "mix rag.search: the query: query must not be empty"}
        ] do
      error = assert_raise Mix.Error, fn -> Search.parse!(argv) end
      assert error.message =~ message
    end
  end

  test "rag.ingest expands paths on the client and checks them before enqueueing" do
    # mix test runs in the project directory, which holds test/.
    assert Ingest.args!([collection: "docs"], ["test"]) ==
             %{"paths" => [Path.join(File.cwd!(), "test")], "collection" => "docs"}

    assert_raise Mix.Error, ~r/give at least one PATH/, fn -> Ingest.args!([], []) end

    assert_raise Mix.Error, ~r{mix rag.ingest: paths: /no/such/dir does not exist}, fn ->
      Ingest.args!([], ["/no/such/dir"])
    end

    assert_raise Mix.Error, ~r/mix rag.ingest: collection must be a name/, fn ->
      Ingest.args!([collection: "x y"], [System.tmp_dir!()])
    end
  end
end
