defmodule DevstralElixir.Rag.ModelIdTest do
  use ExUnit.Case, async: true

  alias DevstralElixir.Proto.Retrieval
  alias DevstralElixir.Rag.ModelId

  test "+rag ids split into the served id and a retrieval flag" do
    assert ModelId.split("tiny-elixir+rag") == {"tiny-elixir", true}
    assert ModelId.split("tiny-elixir:run1/stage2+rag") == {"tiny-elixir:run1/stage2", true}
    assert ModelId.split("tiny-elixir") == {"tiny-elixir", false}
    # Nothing before the suffix is not a model.
    assert ModelId.split("+rag") == {"+rag", false}
    assert ModelId.split("a+rag+rag") == {"a+rag", true}
    assert ModelId.split(nil) == {nil, false}
  end

  test "every served id gets its twin, after the plain ones" do
    assert ModelId.with_augmented(["m", "m:r/stage1"]) ==
             ["m", "m:r/stage1", "m+rag", "m:r/stage1+rag"]
  end

  test "the retrieval comes from the RAG settings, with the issue's defaults" do
    assert ModelId.retrieval(%{remember: false}) ==
             %Retrieval{collection: "", top_k: 5, min_score: 0.3}

    assert ModelId.retrieval(%{top_k: 2, min_score: 0.5, collection: "docs"}) ==
             %Retrieval{collection: "docs", top_k: 2, min_score: 0.5}
  end
end
