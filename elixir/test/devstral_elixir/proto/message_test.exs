defmodule DevstralElixir.Proto.MessageTest do
  @moduledoc """
  The API of the generated contract modules (the byte-level compatibility with
  Python is proven by golden_vectors_test.exs).
  """
  use ExUnit.Case, async: true

  alias DevstralElixir.Proto

  alias DevstralElixir.Proto.{
    ChatMessage,
    ChatPrompt,
    FimPrompt,
    FinishReason,
    GenerateRequest,
    GenerateResponse,
    HealthResponse,
    JobEvent,
    ModelInfo,
    PortFrame,
    SamplingParams,
    TrainConfig
  }

  describe "structs" do
    test "have proto3 defaults" do
      assert %PortFrame{} == %PortFrame{
               call_id: 0,
               method: "",
               kind: :KIND_UNSPECIFIED,
               payload: "",
               status_code: 0,
               message: ""
             }

      assert %GenerateRequest{}.input == nil
      assert %GenerateRequest{}.params == nil
      assert %SamplingParams{}.seed == nil
      assert %SamplingParams{}.temperature == 0.0
      assert %SamplingParams{}.stop == []
      assert %JobEvent{}.metrics == %{}
      assert %GenerateResponse{}.finish_reason == :FINISH_REASON_UNSPECIFIED
      assert %ModelInfo{}.has_chat_template == false
    end

    test "the empty message encodes to nothing and decodes from nothing" do
      for mod <- [PortFrame, GenerateRequest, JobEvent, TrainConfig, HealthResponse] do
        assert mod.encode(struct(mod)) == ""
        assert mod.decode("") == {:ok, struct(mod)}
      end
    end
  end

  describe "enums" do
    test "map names and numbers both ways" do
      assert PortFrame.Kind.value(:STREAM_ITEM) == 2
      assert PortFrame.Kind.name(5) == :CANCEL
      assert JobEvent.Kind.value(:COMPLETED) == 5
      assert FinishReason.value(:FINISH_REASON_STOP) == 1
      assert FinishReason.name(3) == :FINISH_REASON_CANCELLED
    end

    test "unknown numbers pass through; unknown names raise" do
      assert FinishReason.name(42) == 42
      assert FinishReason.value(42) == 42

      assert_raise ArgumentError, ~r/unknown .*FinishReason value: :NOPE/, fn ->
        FinishReason.value(:NOPE)
      end
    end

    test "encode accepts an atom or an integer, decode gives the atom" do
      by_atom = PortFrame.encode(%PortFrame{kind: :END})
      assert by_atom == PortFrame.encode(%PortFrame{kind: 3})
      assert PortFrame.decode!(by_atom).kind == :END
      assert PortFrame.decode!(PortFrame.encode(%PortFrame{kind: 99})).kind == 99
      assert PortFrame.encode(%PortFrame{kind: 0}) == ""
    end
  end

  describe "round trips" do
    test "a port frame around a generate request" do
      request = %GenerateRequest{
        model: "tiny",
        input: {:fim, %FimPrompt{prefix: "def a do\n", suffix: "\nend"}},
        params: %SamplingParams{max_tokens: 8, temperature: 0.5, seed: 0, stop: ["\n\n"]},
        request_id: "r1"
      }

      frame = %PortFrame{
        call_id: 12,
        method: "Generate",
        kind: :REQUEST,
        payload: GenerateRequest.encode(request)
      }

      assert {:ok, decoded} = frame |> PortFrame.encode() |> PortFrame.decode()
      assert decoded == frame
      assert GenerateRequest.decode!(decoded.payload) == request
    end

    test "oneof cases" do
      for input <- [
            {:prompt, "x = 1"},
            {:prompt, ""},
            {:chat, %ChatPrompt{messages: [%ChatMessage{role: "user", content: "hi ✓"}]}},
            {:fim, %FimPrompt{}},
            nil
          ] do
        msg = %GenerateRequest{input: input}
        assert GenerateRequest.decode!(GenerateRequest.encode(msg)) == msg
      end

      # A set case is written even when its value is the default.
      assert GenerateRequest.encode(%GenerateRequest{input: {:prompt, ""}}) == <<0x12, 0>>
    end

    test "proto3 optional keeps present-zero apart from absent" do
      assert SamplingParams.encode(%SamplingParams{seed: nil}) == ""
      assert SamplingParams.encode(%SamplingParams{seed: 0}) == <<0x20, 0>>
      assert SamplingParams.decode!(<<0x20, 0>>).seed == 0
      assert SamplingParams.decode!("").seed == nil
      # top_p too: field 3, fixed32, written when set even to 0.0.
      assert SamplingParams.encode(%SamplingParams{top_p: nil}) == ""
      assert SamplingParams.encode(%SamplingParams{top_p: 0.0}) == <<0x1D, 0::32>>
      assert SamplingParams.decode!(<<0x1D, 0::32>>).top_p == 0.0
      assert SamplingParams.decode!("").top_p == nil
    end

    test "maps, repeated fields and 64-bit integers" do
      event = %JobEvent{
        job_id: "j",
        kind: :METRICS,
        step: -1,
        total_steps: 9_223_372_036_854_775_807,
        metrics: %{"loss" => 1.5, "lr" => 2.0e-4, "" => 0.0}
      }

      assert JobEvent.decode!(JobEvent.encode(event)) == event

      response = %GenerateResponse{text: "é", token_ids: [1, -1, 2_147_483_647, -2_147_483_648]}
      assert GenerateResponse.decode!(GenerateResponse.encode(response)) == response
    end

    test "repeated numbers are packed, negative int32 takes 10 bytes" do
      assert GenerateResponse.encode(%GenerateResponse{token_ids: [1, 2]}) == <<0x12, 2, 1, 2>>
      assert byte_size(PortFrame.encode(%PortFrame{status_code: -1})) == 11
    end

    test "floats are 32-bit" do
      bin = SamplingParams.encode(%SamplingParams{temperature: 0.1, top_p: 1})
      assert %SamplingParams{temperature: t, top_p: 1.0} = SamplingParams.decode!(bin)
      assert_in_delta t, 0.1, 1.0e-7
    end

    test "map entries come out in the order Python's upb writes them" do
      bin = JobEvent.encode(%JobEvent{metrics: %{"b" => 1.0, "" => 1.0, "a" => 1.0, "ab" => 1.0}})
      keys = for <<0x4A, len, entry::binary-size(len) <- bin>>, do: map_key(entry)
      assert keys == ["ab", "a", "b", ""]
    end
  end

  describe "encode/1 refuses values that do not fit the field" do
    test "with an ArgumentError naming the field" do
      cases = [
        {%PortFrame{call_id: -1}, ~r/PortFrame\.call_id: expected uint64, got: -1/},
        {%PortFrame{status_code: 2_147_483_648}, ~r/status_code: expected int32/},
        {%PortFrame{method: <<0xFF>>}, ~r/method: expected valid UTF-8/},
        {%PortFrame{method: :atom}, ~r/method: expected string/},
        {%PortFrame{kind: :NOPE},
         ~r/kind: expected a value of DevstralElixir.Proto.PortFrame.Kind/},
        {%PortFrame{payload: nil}, ~r/payload: expected bytes, got: nil/},
        {%GenerateRequest{params: %FimPrompt{}},
         ~r/params: expected a %DevstralElixir.Proto.SamplingParams{}/},
        {%GenerateRequest{input: {:chat, "x"}},
         ~r/chat: expected a %DevstralElixir.Proto.ChatPrompt{}/},
        {%GenerateRequest{input: {:text, "x"}},
         ~r/input: expected nil \| {:prompt, value} \| {:chat, value} \| {:fim, value}, got: {:text, "x"}/},
        {%GenerateRequest{input: "x"}, ~r/input: expected nil .*, got: "x"/},
        {%GenerateResponse{token_ids: [1, "2"]}, ~r/token_ids: expected int32, got: "2"/},
        {%GenerateResponse{token_ids: 1}, ~r/token_ids: expected a list/},
        {%JobEvent{metrics: %{"a" => "b"}}, ~r/metrics: expected double/},
        {%JobEvent{metrics: [a: 1.0]}, ~r/metrics: expected a map/},
        {%ModelInfo{has_chat_template: 1}, ~r/has_chat_template: expected bool/}
      ]

      for {msg, message} <- cases do
        mod = msg.__struct__
        assert_raise ArgumentError, message, fn -> mod.encode(msg) end
      end
    end
  end

  describe "decode/1 never raises" do
    test "on non-binaries" do
      assert {:error, _} = PortFrame.decode(:nope)

      assert_raise ArgumentError, ~r/cannot decode DevstralElixir.Proto.PortFrame/, fn ->
        PortFrame.decode!(<<0x80>>)
      end
    end

    test "on random and mutated input" do
      :rand.seed(:exsss, {1, 2, 3})

      valid =
        GenerateRequest.encode(%GenerateRequest{
          model: "m",
          input: {:chat, %ChatPrompt{messages: [%ChatMessage{role: "user", content: "héllo"}]}},
          params: %SamplingParams{max_tokens: 5, temperature: 0.5, seed: 7, stop: ["a", "b"]}
        })

      for _ <- 1..3000 do
        input =
          case :rand.uniform(3) do
            1 -> :crypto.strong_rand_bytes(:rand.uniform(40))
            2 -> binary_part(valid, 0, :rand.uniform(byte_size(valid)))
            3 -> mutate(valid)
          end

        for mod <- [GenerateRequest, PortFrame, JobEvent, HealthResponse] do
          assert match?({:ok, %{__struct__: ^mod}}, mod.decode(input)) or
                   match?({:error, reason} when is_binary(reason), mod.decode(input)),
                 "#{inspect(mod)}.decode(#{inspect(input)})"
        end
      end
    end

    test "errors say what was wrong and where" do
      assert PortFrame.decode(<<0x08, 0xFF>>) ==
               {:error, "devstral.worker.v1.PortFrame.call_id (field 1): truncated varint"}

      assert PortFrame.decode(<<0x12, 1, 0xFF>>) ==
               {:error, "devstral.worker.v1.PortFrame.method (field 2): invalid UTF-8"}

      assert {:error, "devstral.worker.v1.ChatMessage.content (field 2): invalid UTF-8"} =
               GenerateRequest.decode(<<0x1A, 5, 0x0A, 3, 0x12, 1, 0xC3>>)
    end
  end

  test "the service module lists the contract's methods" do
    assert %{input: GenerateRequest, output: GenerateResponse, server_streaming: true} =
             Proto.Worker.Service.rpc("Generate")

    assert %{input: Proto.HealthRequest, server_streaming: false} =
             Proto.Worker.Service.rpc("Health")

    assert Proto.Worker.Service.rpc("Nope") == nil
    # Every `rpc` line of the contract, and no other, is listed.
    contract = File.read!(Path.expand("../../../../proto/worker.proto", __DIR__))
    declared = Regex.scan(~r/^\s*rpc\s+(\w+)\(/m, contract, capture: :all_but_first)
    assert declared != []

    assert Enum.sort(List.flatten(declared)) ==
             Enum.sort(Enum.map(Proto.Worker.Service.rpcs(), & &1.name))
  end

  defp mutate(bin) do
    pos = :rand.uniform(byte_size(bin)) - 1
    <<head::binary-size(pos), _, tail::binary>> = bin
    head <> <<:rand.uniform(256) - 1>> <> tail
  end

  defp map_key(<<0x0A, len, key::binary-size(len), _::binary>>), do: key
end
