defmodule DevstralElixir.Web.UI.Conversations do
  @moduledoc """
  The assistant's conversations, kept in Mnesia per browser.

  One `disc_copies` table, `:devstral_conversations`, beside the job queue's
  tables (the queue starts Mnesia in `DATA_DIR/mnesia/<node>`): records
  `{:devstral_conversations, id, browser_id, conversation}`, indexed on the
  browser id (the `devstral_browser` cookie). Every function takes the
  browser id, so a browser only ever sees its own conversations; another
  browser's id is `{:error, :not_found}`.

  A conversation is a map with string keys: `id`, `title`, `messages` (each
  `%{"role" => "user" | "assistant", "content" => text, "model" => id,
  "sources" => [...]}`), `inserted_at` and `updated_at` (ISO 8601).
  """

  alias DevstralElixir.Jobs.Store

  @table :devstral_conversations
  @default_title "New conversation"
  @max_content_bytes 256 * 1024
  @max_title_chars 120

  @type browser :: String.t()
  @type conversation :: %{optional(String.t()) => term()}

  @doc "The conversations of a browser, newest first, without their messages."
  @spec list(browser()) :: {:ok, [conversation()]} | {:error, String.t()}
  def list(browser) do
    with :ok <- ready() do
      rows = :mnesia.dirty_index_read(@table, browser, :browser_id)

      {:ok,
       rows
       |> Enum.map(fn {@table, _id, _browser, conv} -> Map.delete(conv, "messages") end)
       |> Enum.sort_by(& &1["updated_at"], :desc)}
    end
  end

  @doc "A new, empty conversation."
  @spec create(browser(), String.t() | nil) :: {:ok, conversation()} | {:error, String.t()}
  def create(browser, title \\ nil) do
    with :ok <- ready(),
         {:ok, title} <- title(title || @default_title) do
      now = now()

      conv = %{
        "id" => Base.url_encode64(:crypto.strong_rand_bytes(12), padding: false),
        "title" => title,
        "messages" => [],
        "inserted_at" => now,
        "updated_at" => now
      }

      write(browser, conv)
    end
  end

  @doc "One conversation with its messages."
  @spec get(browser(), String.t()) :: {:ok, conversation()} | {:error, :not_found | String.t()}
  def get(browser, id) do
    with :ok <- ready() do
      case :mnesia.dirty_read(@table, id) do
        [{@table, ^id, ^browser, conv}] -> {:ok, conv}
        _ -> {:error, :not_found}
      end
    end
  end

  @doc """
  Appends a message (`role`, `content`, and optionally `model` and
  `sources`). The first user message names a conversation still called
  "#{@default_title}".
  """
  @spec append(browser(), String.t(), map()) ::
          {:ok, conversation()} | {:error, :not_found | String.t()}
  def append(browser, id, message) do
    with {:ok, message} <- message(message) do
      update(browser, id, fn conv ->
        conv = Map.update!(conv, "messages", &(&1 ++ [message]))

        if conv["title"] == @default_title and message["role"] == "user",
          do: Map.put(conv, "title", message["content"] |> String.trim() |> clip()),
          else: conv
      end)
    end
  end

  @doc "Renames a conversation."
  @spec rename(browser(), String.t(), term()) ::
          {:ok, conversation()} | {:error, :not_found | String.t()}
  def rename(browser, id, title) do
    with {:ok, title} <- title(title), do: update(browser, id, &Map.put(&1, "title", title))
  end

  @doc "Deletes a conversation."
  @spec delete(browser(), String.t()) :: :ok | {:error, :not_found | String.t()}
  def delete(browser, id) do
    with {:ok, _conv} <- get(browser, id) do
      transaction(fn -> :mnesia.delete({@table, id}) end)
    end
  end

  defp update(browser, id, fun) do
    with {:ok, conv} <- get(browser, id) do
      write(browser, conv |> fun.() |> Map.put("updated_at", now()))
    end
  end

  defp write(browser, conv) do
    with :ok <- transaction(fn -> :mnesia.write({@table, conv["id"], browser, conv}) end) do
      {:ok, conv}
    end
  end

  defp transaction(fun) do
    case :mnesia.transaction(fun) do
      {:atomic, _} -> :ok
      {:aborted, reason} -> {:error, "the conversation store failed: #{inspect(reason)}"}
    end
  end

  defp message(%{} = message) do
    role = message["role"]
    content = message["content"]
    sources = Map.get(message, "sources") || []
    model = Map.get(message, "model") || ""

    cond do
      role not in ["user", "assistant"] ->
        {:error, "role must be \"user\" or \"assistant\", got #{inspect(role)}"}

      not is_binary(content) or not String.valid?(content) ->
        {:error, "content must be a UTF-8 string"}

      byte_size(content) > @max_content_bytes ->
        {:error, "content is over #{@max_content_bytes} bytes"}

      not is_list(sources) ->
        {:error, "sources must be a list"}

      not is_binary(model) ->
        {:error, "model must be a string"}

      true ->
        {:ok, %{"role" => role, "content" => content, "model" => model, "sources" => sources}}
    end
  end

  defp message(_other), do: {:error, "a message must be an object"}

  defp title(title) when is_binary(title) do
    case String.trim(title) do
      "" -> {:error, "the title must not be empty"}
      title -> {:ok, clip(title)}
    end
  end

  defp title(_other), do: {:error, "the title must be a string"}

  defp clip(text) do
    text = text |> String.split("\n") |> hd()

    if String.length(text) > @max_title_chars,
      do: String.slice(text, 0, @max_title_chars - 1) <> "…",
      else: text
  end

  defp now, do: DateTime.utc_now() |> DateTime.truncate(:millisecond) |> DateTime.to_iso8601()

  # The table is made on first use, once the queue has started Mnesia.
  defp ready do
    cond do
      :persistent_term.get({__MODULE__, :ready}, false) ->
        :ok

      :mnesia.system_info(:is_running) != :yes ->
        {:error, "the conversation store is not running (Mnesia is not started)"}

      true ->
        with :ok <-
               Store.ensure_table(@table,
                 attributes: [:id, :browser_id, :conversation],
                 index: [:browser_id]
               ),
             :ok <- wait() do
          :persistent_term.put({__MODULE__, :ready}, true)
          :ok
        end
    end
  end

  defp wait do
    case :mnesia.wait_for_tables([@table], 30_000) do
      :ok -> :ok
      other -> {:error, "the conversation table did not load: #{inspect(other)}"}
    end
  end
end
