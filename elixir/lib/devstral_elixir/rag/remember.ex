defmodule DevstralElixir.Rag.Remember do
  @moduledoc """
  Automatic memory: a chat completion that finished normally (not cancelled,
  not failed) is stored in the `conversations` collection as one document,
  the last user message and the assistant's answer, with source
  `conversation:<response id>` and kind `conversation`, in the same
  `User: ...\n\nAssistant: ...` form as an ingested log's exchanges.

  Storing runs in its own task under `DevstralElixir.TaskSupervisor`, after
  the answer has gone out: it never delays or fails a response, and a failure
  is only logged. `RAG_REMEMBER=false` turns it off (`DevstralElixir.Config`).
  """
  require Logger

  alias DevstralElixir.Proto.{ChatMessage, MemoryDocument, UpsertDocumentsRequest}
  alias DevstralElixir.Rag.Memory

  @doc """
  The document one exchange becomes, or nil when there is nothing worth
  keeping (no user message, or an empty answer).
  """
  @spec document(String.t(), [ChatMessage.t()], String.t()) :: MemoryDocument.t() | nil
  def document(response_id, messages, answer) do
    question =
      messages
      |> Enum.reverse()
      |> Enum.find_value(fn %ChatMessage{role: role, content: content} ->
        if role == "user", do: content
      end)

    if blank?(question) or blank?(answer) do
      nil
    else
      %MemoryDocument{
        text: "User: #{String.trim(question)}\n\nAssistant: #{String.trim(answer)}",
        source: "conversation:" <> response_id,
        kind: "conversation"
      }
    end
  end

  @doc """
  Stores the exchange on `worker` in a task of its own and returns at once.
  """
  @spec store_async(GenServer.server(), String.t(), [ChatMessage.t()], String.t()) :: :ok
  def store_async(worker, response_id, messages, answer) do
    case document(response_id, messages, answer) do
      nil ->
        :ok

      document ->
        case Task.Supervisor.start_child(DevstralElixir.TaskSupervisor, fn ->
               store(worker, document)
             end) do
          {:ok, _pid} -> :ok
          other -> Logger.warning("automatic memory: not stored: #{inspect(other)}")
        end

        :ok
    end
  catch
    # No task supervisor (the application is stopping): the answer went out anyway.
    :exit, reason ->
      Logger.warning("automatic memory: not stored: #{Exception.format_exit(reason)}")
  end

  defp store(worker, %MemoryDocument{} = document) do
    request = %UpsertDocumentsRequest{collection: Memory.conversations(), documents: [document]}

    case Memory.upsert(worker, request) do
      {:ok, _counts} ->
        :ok

      {:error, error} ->
        Logger.warning("automatic memory: storing #{document.source} failed: #{error.message}")
    end
  catch
    :exit, reason ->
      Logger.warning(
        "automatic memory: storing #{document.source} failed: #{Exception.format_exit(reason)}"
      )
  end

  defp blank?(text), do: not is_binary(text) or String.trim(text) == ""
end
