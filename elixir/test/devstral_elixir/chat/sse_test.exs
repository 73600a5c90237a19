defmodule DevstralElixir.Chat.SSETest do
  use ExUnit.Case, async: true

  alias DevstralElixir.Chat.SSE

  @body "data: {\"a\":1}\n\n: a comment\n\nevent: x\ndata: line one\ndata: line two\n\ndata: [DONE]\n\n"

  test "events come out whole however the bytes are split" do
    expected = ["{\"a\":1}", "line one\nline two", "[DONE]"]

    for size <- [1, 2, 3, 7, byte_size(@body)] do
      {events, rest} =
        @body
        |> chunks(size)
        |> Enum.reduce({[], ""}, fn chunk, {events, buffer} ->
          {new, buffer} = SSE.feed(buffer, chunk)
          {events ++ new, buffer}
        end)

      assert events == expected, "split every #{size} bytes"
      assert rest == ""
    end
  end

  test "CRLF line endings end events too, and a partial event waits for its blank line" do
    assert {["x"], "data: y"} = SSE.feed("", "data: x\r\n\r\ndata: y")
    assert {["y"], ""} = SSE.feed("data: y", "\r\n\r\n")
  end

  defp chunks(binary, size) when byte_size(binary) <= size, do: [binary]

  defp chunks(binary, size) do
    <<chunk::binary-size(size), rest::binary>> = binary
    [chunk | chunks(rest, size)]
  end
end
