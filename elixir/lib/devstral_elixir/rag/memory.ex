defmodule DevstralElixir.Rag.Memory do
  @moduledoc """
  The host's client of the worker's RAG memory (the vector store the worker
  owns): checks requests given as JSON-shaped maps, calls `SearchMemory`,
  `UpsertDocuments`, `DeleteDocuments` and `MemoryStats`, and turns the
  answers into JSON-ready maps.

  The HTTP API (`DevstralElixir.Web.RagApi`) and the `mix rag.*` tasks, when
  they run in-process, share these functions, so a request means the same
  thing whichever way it comes. A hit is `%{"source", "score", "text"}`
  everywhere (search answers, `mix rag.search --json`, and the `sources` of a
  `+rag` chat completion).
  """

  alias DevstralElixir.Proto.{
    CollectionStats,
    DeleteDocumentsRequest,
    MemoryDocument,
    MemoryFilter,
    MemoryHit,
    MemoryStatsRequest,
    MemoryStatsResponse,
    SearchMemoryRequest,
    UpsertDocumentsRequest
  }

  alias DevstralElixir.Web.OpenAIParams
  alias DevstralElixir.Worker
  alias DevstralElixir.Worker.Error

  @type invalid :: {:invalid, String.t(), String.t() | nil}

  @search_fields ["query", "collection", "top_k", "min_score", "mode", "filters"]
  @filter_keys ["source", "kind", "timestamp"]
  @modes ["dense", "hybrid"]
  @max_top_k 100
  @max_documents 1000
  # The first call loads the embedder; an upsert of many long texts embeds
  # them all on a CPU.
  @search_timeout_ms 120_000
  @upsert_timeout_ms 300_000

  @doc "The memory collection conversations go to, and the default one."
  @spec conversations() :: String.t()
  def conversations, do: "conversations"

  @doc "True for a collection name the host passes on: 1 to 64 letters, digits, `_` and `-`."
  @spec collection_name?(term()) :: boolean()
  def collection_name?(name),
    do: is_binary(name) and Regex.match?(~r/^[A-Za-z0-9_-]{1,64}$/, name)

  @doc """
  Checks an optional collection name: `{:ok, name}` (`""`, the worker's
  default, for nil) or `{:error, message}`.
  """
  @spec check_collection(term()) :: {:ok, String.t()} | {:error, String.t()}
  def check_collection(nil), do: {:ok, ""}

  def check_collection(name) do
    if collection_name?(name),
      do: {:ok, name},
      else:
        {:error,
         "collection must be a name of 1 to 64 letters, digits, _ and -, got #{inspect(name)}"}
  end

  @doc """
  Checks a search given as a map (`"query"` required; `"collection"`,
  `"top_k"` 1..#{@max_top_k}, `"min_score"` -1..1, `"mode"` `"dense"` or
  `"hybrid"`, `"filters"` an object `{"source" | "kind" | "timestamp": STRING}`
  optional) and builds the `SearchMemoryRequest`. Unknown fields are refused,
  so a misspelt one is not silently ignored.
  """
  @spec search_request(term()) :: {:ok, SearchMemoryRequest.t()} | invalid()
  def search_request(body) when is_map(body) do
    with :ok <- known_fields(body, @search_fields),
         {:ok, query} <- required_text(body, "query"),
         {:ok, collection} <- collection(body),
         {:ok, top_k} <- optional_integer(body, "top_k", 1..@max_top_k),
         {:ok, min_score} <- optional_number(body, "min_score", -1.0, 1.0),
         {:ok, mode} <- mode(body),
         {:ok, filters} <- filters(body) do
      {:ok,
       %SearchMemoryRequest{
         query: query,
         collection: collection,
         top_k: top_k || 0,
         min_score: min_score,
         mode: mode,
         filters: filters
       }}
    end
  end

  def search_request(_), do: {:invalid, "the body must be a JSON object", nil}

  @doc """
  Checks an upsert given as a map: `"documents"` (1..#{@max_documents} objects
  with a non-empty `"text"` and `"source"`, and optional `"kind"` and
  `"timestamp"` strings) and an optional `"collection"`.
  """
  @spec upsert_request(term()) :: {:ok, UpsertDocumentsRequest.t()} | invalid()
  def upsert_request(body) when is_map(body) do
    with :ok <- known_fields(body, ["collection", "documents"]),
         {:ok, collection} <- collection(body),
         {:ok, documents} <- documents(Map.get(body, "documents")) do
      {:ok, %UpsertDocumentsRequest{collection: collection, documents: documents}}
    end
  end

  def upsert_request(_), do: {:invalid, "the body must be a JSON object", nil}

  @doc "Checks a delete by source: `\"source\"` required, `\"collection\"` optional."
  @spec delete_request(map()) :: {:ok, DeleteDocumentsRequest.t()} | invalid()
  def delete_request(params) when is_map(params) do
    with :ok <- known_fields(params, ["collection", "source"]),
         {:ok, source} <- required_text(params, "source"),
         {:ok, collection} <- collection(params) do
      {:ok, %DeleteDocumentsRequest{collection: collection, source: source}}
    end
  end

  @doc "Runs a search on `worker`; the answer as `%{\"hits\" => [hit, ...]}`."
  @spec search(GenServer.server(), SearchMemoryRequest.t()) :: {:ok, map()} | {:error, Error.t()}
  def search(worker, %SearchMemoryRequest{} = request) do
    with {:ok, response} <- Worker.call(worker, "SearchMemory", request, @search_timeout_ms),
         do: {:ok, %{"hits" => hits_json(response.hits)}}
  end

  @doc "Stores documents on `worker`; the answer as `%{\"added\", \"existing\"}`."
  @spec upsert(GenServer.server(), UpsertDocumentsRequest.t()) ::
          {:ok, map()} | {:error, Error.t()}
  def upsert(worker, %UpsertDocumentsRequest{} = request) do
    with {:ok, response} <- Worker.call(worker, "UpsertDocuments", request, @upsert_timeout_ms),
         do: {:ok, %{"added" => response.added, "existing" => response.existing}}
  end

  @doc "Deletes every document of one source on `worker`; `%{\"deleted\" => n}`."
  @spec delete(GenServer.server(), DeleteDocumentsRequest.t()) ::
          {:ok, map()} | {:error, Error.t()}
  def delete(worker, %DeleteDocumentsRequest{} = request) do
    with {:ok, response} <- Worker.call(worker, "DeleteDocuments", request, @search_timeout_ms),
         do: {:ok, %{"deleted" => response.deleted}}
  end

  @doc "The store's collections and location on `worker`, as `stats_json/1` shapes them."
  @spec stats(GenServer.server()) :: {:ok, map()} | {:error, Error.t()}
  def stats(worker) do
    with {:ok, response} <-
           Worker.call(worker, "MemoryStats", %MemoryStatsRequest{}, @search_timeout_ms),
         do: {:ok, stats_json(response)}
  end

  @doc """
  The JSON form of stats: `{"collections": [{"name", "points", "dimensions",
  "sources"}], "location", "embed_model"}`.
  """
  @spec stats_json(MemoryStatsResponse.t()) :: map()
  def stats_json(%MemoryStatsResponse{} = response) do
    %{
      "collections" =>
        Enum.map(response.collections, fn %CollectionStats{} = c ->
          %{
            "name" => c.name,
            "points" => c.points,
            "dimensions" => c.dimensions,
            "sources" => c.sources
          }
        end),
      "location" => response.location,
      "embed_model" => response.embed_model
    }
  end

  @doc """
  The JSON form of hits, in their order: `[%{"source", "score", "text"}]`,
  the score rounded to 4 decimals.
  """
  @spec hits_json([MemoryHit.t()]) :: [map()]
  def hits_json(hits) do
    Enum.map(hits, fn %MemoryHit{} = hit ->
      %{"source" => hit.source, "score" => Float.round(hit.score * 1.0, 4), "text" => hit.text}
    end)
  end

  # Checks

  defp known_fields(body, known) do
    case Map.keys(body) -- known do
      [] ->
        :ok

      [field | _] ->
        {:invalid, "unknown field #{inspect(field)}; known: #{Enum.join(known, ", ")}", field}
    end
  end

  defp required_text(body, field) do
    case Map.get(body, field) do
      nil ->
        {:invalid, "#{field} is required", field}

      value when is_binary(value) ->
        if String.trim(value) == "",
          do: {:invalid, "#{field} must not be empty", field},
          else: {:ok, value}

      value ->
        {:invalid, "#{field} must be a string, got #{inspect(value)}", field}
    end
  end

  defp collection(body) do
    case check_collection(Map.get(body, "collection")) do
      {:ok, name} -> {:ok, name}
      {:error, message} -> {:invalid, message, "collection"}
    end
  end

  defp optional_integer(body, field, range) do
    case Map.get(body, field) do
      nil ->
        {:ok, nil}

      n when is_integer(n) and n >= range.first and n <= range.last ->
        {:ok, n}

      n ->
        {:invalid,
         "#{field} must be an integer from #{range.first} to #{range.last}, got #{inspect(n)}",
         field}
    end
  end

  defp optional_number(body, field, min, max) do
    case Map.get(body, field) do
      nil -> {:ok, nil}
      x when is_number(x) and x >= min and x <= max -> {:ok, x * 1.0}
      x -> {:invalid, "#{field} must be a number from #{min} to #{max}, got #{inspect(x)}", field}
    end
  end

  defp mode(body) do
    case Map.get(body, "mode") do
      nil ->
        {:ok, ""}

      mode when mode in @modes ->
        {:ok, mode}

      other ->
        {:invalid, "mode must be one of #{Enum.join(@modes, ", ")}, got #{inspect(other)}",
         "mode"}
    end
  end

  defp filters(body) do
    case Map.get(body, "filters") do
      nil ->
        {:ok, []}

      filters when is_map(filters) ->
        Enum.reduce_while(Enum.sort(filters), {:ok, []}, fn
          {key, value}, {:ok, acc} when key in @filter_keys and is_binary(value) ->
            {:cont, {:ok, acc ++ [%MemoryFilter{key: key, value: value}]}}

          {key, _value}, _acc when key in @filter_keys ->
            {:halt, {:invalid, "filters.#{key} must be a string", "filters"}}

          {key, _value}, _acc ->
            {:halt,
             {:invalid,
              "filters.#{key} is not a filterable field; known: #{Enum.join(@filter_keys, ", ")}",
              "filters"}}
        end)

      other ->
        {:invalid, ~s(filters must be an object like {"source": "..."}, got #{inspect(other)}),
         "filters"}
    end
  end

  defp documents([_ | _] = documents) when length(documents) > @max_documents,
    do:
      {:invalid,
       "documents has #{length(documents)} items; at most #{@max_documents} are allowed",
       "documents"}

  defp documents([_ | _] = documents), do: OpenAIParams.each_valid(documents, &document/2)

  defp documents(_),
    do: {:invalid, "documents must be a non-empty array of objects", "documents"}

  defp document(document, index) when is_map(document) do
    where = "documents[#{index}]"

    with :ok <- prefix(known_fields(document, ["text", "source", "kind", "timestamp"]), where),
         {:ok, text} <- prefix(required_text(document, "text"), where),
         {:ok, source} <- prefix(required_text(document, "source"), where),
         {:ok, kind} <- prefix(optional_string(document, "kind"), where),
         {:ok, timestamp} <- prefix(optional_string(document, "timestamp"), where) do
      {:ok, %MemoryDocument{text: text, source: source, kind: kind, timestamp: timestamp}}
    end
  end

  defp document(_other, index),
    do: {:invalid, "documents[#{index}] must be an object", "documents"}

  defp optional_string(body, field) do
    case Map.get(body, field) do
      nil -> {:ok, ""}
      value when is_binary(value) -> {:ok, value}
      value -> {:invalid, "#{field} must be a string, got #{inspect(value)}", field}
    end
  end

  # A document's field errors name it by its index and point at `documents`.
  defp prefix({:invalid, message, _field}, where),
    do: {:invalid, "#{where}: #{message}", "documents"}

  defp prefix(other, _where), do: other
end
