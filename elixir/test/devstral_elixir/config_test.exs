defmodule DevstralElixir.ConfigTest do
  use ExUnit.Case, async: true

  alias DevstralElixir.Config

  test "defaults: loopback, port 4000, the shipped tiny code base whatever DATA_DIR is" do
    config = Config.load(%{"DATA_DIR" => "/tmp/some-data"})
    assert config.http_host == {127, 0, 0, 1}
    assert config.http_port == 4000
    assert config.grpc_port == 50051
    assert config.model == Path.join(Config.root(), "models/tiny-code")
    assert config.worker_grpc
  end

  test "an invalid port names the variable" do
    error = assert_raise Config.Error, fn -> Config.load(%{"HTTP_PORT" => "abc"}) end
    assert error.message =~ "HTTP_PORT"
    assert error.message =~ "abc"

    assert_raise Config.Error, ~r/GRPC_PORT/, fn -> Config.load(%{"GRPC_PORT" => "70000"}) end
  end

  test "a non-loopback bind needs API_TOKEN" do
    assert_raise Config.Error, ~r/API_TOKEN/, fn -> Config.load(%{"HTTP_HOST" => "0.0.0.0"}) end
    config = Config.load(%{"HTTP_HOST" => "0.0.0.0", "API_TOKEN" => "secret"})
    assert config.http_host == {0, 0, 0, 0}
  end

  test "a MODEL path that does not exist is rejected, a hub id is passed through" do
    assert_raise Config.Error, ~r/MODEL/, fn ->
      Config.load(%{"MODEL" => "/nonexistent/model"})
    end

    assert Config.load(%{"MODEL" => "Qwen/Qwen2.5-Coder-1.5B"}).model == "Qwen/Qwen2.5-Coder-1.5B"
  end

  test "bad addresses and booleans name their variables" do
    assert_raise Config.Error, ~r/HTTP_HOST/, fn -> Config.load(%{"HTTP_HOST" => "nope"}) end
    assert_raise Config.Error, ~r/WORKER_GRPC/, fn -> Config.load(%{"WORKER_GRPC" => "maybe"}) end
  end

  test "SERVED_MODEL_NAME defaults to the model directory's name, or the hub id" do
    assert Config.load(%{}).served_model_name == "tiny-code"

    assert Config.load(%{"MODEL" => "Qwen/Qwen2.5-Coder-1.5B"}).served_model_name ==
             "Qwen/Qwen2.5-Coder-1.5B"

    assert Config.load(%{"SERVED_MODEL_NAME" => "my-coder"}).served_model_name == "my-coder"
    assert Config.load(%{"SERVED_MODEL_NAME" => " "}).served_model_name == "tiny-code"
    assert Config.default_served_name("/models/coder/") == "coder"
  end

  test "RAG settings: defaults, values and errors that name the variable" do
    assert Config.load(%{}).rag == %{
             remember: true,
             top_k: 5,
             min_score: 0.3,
             collection: "conversations"
           }

    rag =
      Config.load(%{
        "RAG_REMEMBER" => "false",
        "RAG_TOP_K" => "8",
        "RAG_MIN_SCORE" => "0",
        "RAG_COLLECTION" => "docs"
      }).rag

    assert rag == %{remember: false, top_k: 8, min_score: 0.0, collection: "docs"}

    for {name, value} <- [
          {"RAG_REMEMBER", "sometimes"},
          {"RAG_TOP_K", "0"},
          {"RAG_TOP_K", "five"},
          {"RAG_MIN_SCORE", "1.5"},
          {"RAG_MIN_SCORE", "high"},
          {"RAG_COLLECTION", "a/b"}
        ] do
      error = assert_raise Config.Error, fn -> Config.load(%{name => value}) end
      assert error.message =~ name
      assert error.message =~ value
    end
  end
end
