defmodule DevstralElixir.Chat.SSE do
  @moduledoc """
  An incremental reader of a Server-Sent Events body, as the host's
  `/v1/chat/completions` streams it: feed it bytes as they arrive (in any
  split), get back the complete events' `data` values.

  Only what the OpenAI-style stream uses is read: `data:` lines, joined with
  newlines when an event has several, and blank lines ending an event
  (`\\n\\n` or `\\r\\n\\r\\n`). Comments and other fields are skipped, as the
  SSE specification says a client must.
  """

  @typedoc "Bytes of an event not yet ended by a blank line."
  @type buffer :: binary()

  @doc "Appends `bytes`; returns the data of every event they complete and the rest."
  @spec feed(buffer(), binary()) :: {[String.t()], buffer()}
  def feed(buffer, bytes), do: split(String.replace(buffer <> bytes, "\r\n", "\n"), [])

  defp split(buffer, events) do
    case :binary.split(buffer, "\n\n") do
      [event, rest] -> split(rest, add(events, event))
      [partial] -> {Enum.reverse(events), partial}
    end
  end

  defp add(events, event) do
    data =
      for line <- String.split(event, "\n"), String.starts_with?(line, "data:") do
        line |> String.trim_leading("data:") |> String.trim_leading(" ")
      end

    if data == [], do: events, else: [Enum.join(data, "\n") | events]
  end
end
