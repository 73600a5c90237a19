defmodule DevstralElixir.Web.OpenAIParamsTest do
  use ExUnit.Case, async: true

  alias DevstralElixir.Proto.{ChatMessage, FimPrompt, SamplingParams}
  alias DevstralElixir.Web.OpenAIParams

  test "a completion with a suffix becomes a FIM request" do
    assert {:ok, parsed} =
             OpenAIParams.completion(%{"prompt" => "def a", "suffix" => "end", "max_tokens" => 7})

    assert parsed.request.input == {:fim, %FimPrompt{prefix: "def a", suffix: "end"}}

    # top_p absent stays absent on the wire: the worker reads that as 1.0.
    assert %SamplingParams{max_tokens: 7, temperature: 1.0, top_p: nil, seed: nil} =
             parsed.request.params

    refute parsed.stream
  end

  test "completion defaults follow OpenAI's: 16 tokens" do
    assert {:ok, parsed} = OpenAIParams.completion(%{"prompt" => ["only one"], "stop" => "\n"})
    assert parsed.request.input == {:prompt, "only one"}
    assert parsed.request.params.max_tokens == 16
    assert parsed.request.params.stop == ["\n"]
  end

  test "chat messages accept text parts and keep their order" do
    body = %{
      "messages" => [
        %{"role" => "system", "content" => "be brief"},
        %{
          "role" => "user",
          "content" => [%{"type" => "text", "text" => "a"}, %{"type" => "text", "text" => "b"}]
        }
      ],
      "stream" => true,
      "seed" => 0,
      "stream_options" => %{"include_usage" => true}
    }

    assert {:ok, parsed} = OpenAIParams.chat(body)
    {:chat, chat} = parsed.request.input

    assert chat.messages == [
             %ChatMessage{role: "system", content: "be brief"},
             %ChatMessage{role: "user", content: "ab"}
           ]

    assert parsed.stream and parsed.include_usage
    # seed 0 is a real seed, not "unset".
    assert parsed.request.params.seed == 0
  end

  test "an explicit top_p is sent as given; top_p 0 is greedy" do
    for top_p <- [1, 0.25, 1.0e-6] do
      assert {:ok, parsed} = OpenAIParams.completion(%{"prompt" => "x", "top_p" => top_p})
      assert %SamplingParams{temperature: 1.0, top_p: sent} = parsed.request.params
      assert sent === top_p * 1.0
    end

    # OpenAI allows 0; a nucleus of zero mass keeps only the top token, i.e. greedy.
    body = %{"prompt" => "x", "top_p" => 0, "temperature" => 0.8, "seed" => 3}
    assert {:ok, parsed} = OpenAIParams.completion(body)
    assert %SamplingParams{temperature: 0.0, top_p: nil, seed: 3} = parsed.request.params
  end

  test "invalid fields are named" do
    assert {:invalid, message, "prompt"} = OpenAIParams.completion(%{})
    assert message =~ "prompt"
    assert {:invalid, _, "messages"} = OpenAIParams.chat(%{"messages" => []})
    assert {:invalid, _, "messages"} = OpenAIParams.chat(%{"messages" => [%{"role" => "wizard"}]})

    assert {:invalid, _, "max_tokens"} =
             OpenAIParams.completion(%{"prompt" => "x", "max_tokens" => 0})

    assert {:invalid, _, "temperature"} =
             OpenAIParams.completion(%{"prompt" => "x", "temperature" => 3})

    assert {:invalid, _, "top_p"} = OpenAIParams.completion(%{"prompt" => "x", "top_p" => -0.1})
    assert {:invalid, _, "top_p"} = OpenAIParams.completion(%{"prompt" => "x", "top_p" => 1.5})
    assert {:invalid, _, "stop"} = OpenAIParams.completion(%{"prompt" => "x", "stop" => [1]})
    assert {:invalid, _, "seed"} = OpenAIParams.completion(%{"prompt" => "x", "seed" => -1})
    assert {:invalid, _, "n"} = OpenAIParams.completion(%{"prompt" => "x", "n" => 2})

    assert {:invalid, _, "stream"} =
             OpenAIParams.completion(%{"prompt" => "x", "stream" => "yes"})

    assert {:invalid, _, nil} = OpenAIParams.completion([1, 2])
  end
end
