defmodule DevstralElixir.Rag.MemoryTest do
  use ExUnit.Case, async: true

  alias DevstralElixir.Proto.{MemoryDocument, MemoryFilter, MemoryHit, SearchMemoryRequest}
  alias DevstralElixir.Rag.Memory

  test "a search: only the query is required; zero values mean the worker's defaults" do
    assert {:ok, %SearchMemoryRequest{} = request} =
             Memory.search_request(%{"query" => "genserver"})

    assert request.query == "genserver"
    assert request.collection == ""
    assert request.top_k == 0
    assert request.min_score == nil
    assert request.mode == ""
    assert request.filters == []

    assert {:ok, request} =
             Memory.search_request(%{
               "query" => "q",
               "collection" => "docs",
               "top_k" => 3,
               "min_score" => 0,
               "mode" => "hybrid",
               "filters" => %{"source" => "a.md", "kind" => "markdown"}
             })

    assert {request.collection, request.top_k, request.min_score, request.mode} ==
             {"docs", 3, 0.0, "hybrid"}

    assert request.filters == [
             %MemoryFilter{key: "kind", value: "markdown"},
             %MemoryFilter{key: "source", value: "a.md"}
           ]
  end

  test "a bad search names its field" do
    for {body, field, text} <- [
          {%{}, "query", "query is required"},
          {%{"query" => "  "}, "query", "must not be empty"},
          {%{"query" => 3}, "query", "must be a string"},
          {%{"query" => "q", "top_k" => 0}, "top_k", "from 1 to 100"},
          {%{"query" => "q", "top_k" => 2.5}, "top_k", "integer"},
          {%{"query" => "q", "min_score" => 1.5}, "min_score", "from -1.0 to 1.0"},
          {%{"query" => "q", "min_score" => "high"}, "min_score", "number"},
          {%{"query" => "q", "mode" => "sparse"}, "mode", "dense, hybrid"},
          {%{"query" => "q", "collection" => "../etc"}, "collection", "letters, digits"},
          {%{"query" => "q", "filters" => %{"owner" => "x"}}, "filters", "filters.owner"},
          {%{"query" => "q", "filters" => %{"kind" => 1}}, "filters", "filters.kind"},
          {%{"query" => "q", "filters" => ["kind"]}, "filters", "object"},
          {%{"query" => "q", "topk" => 3}, "topk", ~s(unknown field "topk")}
        ] do
      assert {:invalid, message, ^field} = Memory.search_request(body)
      assert message =~ text
    end

    assert {:invalid, _message, nil} = Memory.search_request(["q"])
  end

  test "an upsert: documents need text and source; errors name the document" do
    body = %{
      "collection" => "docs",
      "documents" => [%{"text" => "Supervisors restart children.", "source" => "otp.md"}]
    }

    assert {:ok, request} = Memory.upsert_request(body)
    assert request.collection == "docs"

    assert request.documents == [
             %MemoryDocument{text: "Supervisors restart children.", source: "otp.md"}
           ]

    for {documents, text} <- [
          {nil, "non-empty array"},
          {[], "non-empty array"},
          {["text"], "documents[0] must be an object"},
          {[%{"text" => "t", "source" => "s"}, %{"text" => "t"}],
           "documents[1]: source is required"},
          {[%{"text" => "", "source" => "s"}], "documents[0]: text must not be empty"},
          {[%{"text" => "t", "source" => "s", "kind" => 1}],
           "documents[0]: kind must be a string"},
          {[%{"text" => "t", "source" => "s", "id" => 1}], ~s(documents[0]: unknown field "id")}
        ] do
      assert {:invalid, message, "documents"} = Memory.upsert_request(%{"documents" => documents})
      assert message =~ text
    end

    too_many = List.duplicate(%{"text" => "t", "source" => "s"}, 1001)
    assert {:invalid, message, "documents"} = Memory.upsert_request(%{"documents" => too_many})
    assert message =~ "at most 1000"
  end

  test "a delete needs a source" do
    assert {:ok, request} = Memory.delete_request(%{"source" => "conversation:x"})
    assert {request.source, request.collection} == {"conversation:x", ""}
    assert {:invalid, _, "source"} = Memory.delete_request(%{"collection" => "docs"})
    assert {:invalid, _, "filter"} = Memory.delete_request(%{"source" => "s", "filter" => "x"})
  end

  test "hits become source, score (4 decimals) and text, in order" do
    hits = [
      %MemoryHit{source: "a.md#Intro", score: 0.812345678, text: "first", kind: "markdown"},
      %MemoryHit{source: "conversation:1", score: 0.5, text: "second"}
    ]

    assert Memory.hits_json(hits) == [
             %{"source" => "a.md#Intro", "score" => 0.8123, "text" => "first"},
             %{"source" => "conversation:1", "score" => 0.5, "text" => "second"}
           ]
  end

  test "collection names" do
    assert Memory.check_collection(nil) == {:ok, ""}
    assert Memory.check_collection("my_docs-2") == {:ok, "my_docs-2"}
    assert {:error, _} = Memory.check_collection("a b")
    assert {:error, _} = Memory.check_collection(String.duplicate("a", 65))
    assert {:error, _} = Memory.check_collection(7)
  end
end
