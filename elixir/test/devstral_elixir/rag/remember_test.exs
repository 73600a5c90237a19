defmodule DevstralElixir.Rag.RememberTest do
  use ExUnit.Case, async: true

  alias DevstralElixir.Proto.{ChatMessage, MemoryDocument}
  alias DevstralElixir.Rag.Remember

  defp messages(pairs),
    do: for({role, text} <- pairs, do: %ChatMessage{role: role, content: text})

  test "the last user message and the answer become one conversation document" do
    chat =
      messages([
        {"system", "Be brief."},
        {"user", "first question"},
        {"assistant", "first answer"},
        {"user", "  What does GenServer.call return?  "}
      ])

    assert Remember.document("chatcmpl-abc", chat, "The reply.\n") == %MemoryDocument{
             text: "User: What does GenServer.call return?\n\nAssistant: The reply.",
             source: "conversation:chatcmpl-abc",
             kind: "conversation"
           }
  end

  test "nothing is kept without a user message or an answer" do
    assert Remember.document("id", messages([{"system", "s"}]), "answer") == nil
    assert Remember.document("id", messages([{"user", "q"}]), "  ") == nil
    assert Remember.document("id", messages([{"user", ""}]), "answer") == nil
  end
end
