defmodule DevstralElixir.Web.RagApi do
  @moduledoc """
  The RAG memory's JSON API, over the worker's vector store
  (`DevstralElixir.Rag.Memory`):

    * `POST /api/rag/search` - body `{"query": TEXT, "collection": NAME,
      "top_k": 1..100, "min_score": -1..1, "mode": "dense" | "hybrid",
      "filters": {"source" | "kind" | "timestamp": TEXT}}` (only `query`
      required; the worker's defaults are `conversations`, 5 and 0.3) →
      `{"hits": [{"source", "score", "text"}, ...]}`, best first;
    * `GET /api/rag/stats` → `{"collections": [{"name", "points",
      "dimensions", "sources"}], "location", "embed_model"}`;
    * `POST /api/rag/documents` - body `{"collection": NAME, "documents":
      [{"text", "source", "kind", "timestamp"}, ...]}` → `{"added",
      "existing"}` (ids are content hashes: storing a text again adds nothing);
    * `DELETE /api/rag/documents?source=S[&collection=NAME]` → `{"deleted": n}`.

  Access: the reads (search, stats) need what `/v1/*` needs, the `API_TOKEN`
  bearer token when one is configured (the admin token is accepted too), since
  `+rag` chat completions reveal the same memory; the writes (upsert, delete)
  need the admin token (`DevstralElixir.Web.AdminOnly`), like every other
  state-changing route. Ingesting files is the `rag_ingest` job
  (`POST /api/jobs`), which reads paths on the host.

  Errors use `DevstralElixir.Web.Json.error/3`: 400 naming the field for bad
  input, the worker's `INVALID_ARGUMENT` as 400 too, 501 when the worker has
  no memory, 503 while the worker is not running.
  """

  alias DevstralElixir.Jobs.AdminToken
  alias DevstralElixir.Rag.Memory
  alias DevstralElixir.Web.{AdminOnly, Json, Request, Router}
  alias DevstralElixir.Worker.Error

  @doc """
  Handles a request under `/api/rag`. `context` is the router's (the worker,
  the API token); options (for tests): `:admin_token` (the `AdminToken` server).
  """
  @spec handle(Request.t(), map(), keyword()) :: Request.response()
  def handle(%Request{} = request, context, opts \\ []) do
    opts = Keyword.validate!(opts, admin_token: AdminToken)
    route(request.method, request.path, request, context, opts)
  catch
    :exit, {reason, {GenServer, :call, _}} when reason in [:noproc, :shutdown, :normal] ->
      Json.error(503, "the model worker is not running", code: "worker_unavailable")
  end

  defp route("POST", ["api", "rag", "search"], request, context, opts),
    do: readable(request, context, opts, fn -> search(request, context) end)

  defp route("GET", ["api", "rag", "stats"], request, context, opts),
    do: readable(request, context, opts, fn -> answer(Memory.stats(context.worker)) end)

  defp route("POST", ["api", "rag", "documents"], request, context, opts),
    do: AdminOnly.run(request, opts, fn -> upsert(request, context) end)

  defp route("DELETE", ["api", "rag", "documents"], request, context, opts),
    do: AdminOnly.run(request, opts, fn -> delete(request, context) end)

  defp route(method, ["api", "rag", "search"], _request, _context, _opts),
    do: Json.method_not_allowed(method, "POST")

  defp route(method, ["api", "rag", "stats"], _request, _context, _opts),
    do: Json.method_not_allowed(method, "GET")

  defp route(method, ["api", "rag", "documents"], _request, _context, _opts),
    do: Json.method_not_allowed(method, "POST, DELETE")

  defp route(method, path, _request, _context, _opts) do
    Json.error(404, "no route for #{method} /#{Enum.join(path, "/")}", code: "not_found")
  end

  defp search(request, context) do
    with {:ok, body} <- decode(request.body),
         {:ok, search} <- checked(Memory.search_request(body)) do
      answer(Memory.search(context.worker, search))
    end
  end

  defp upsert(request, context) do
    with {:ok, body} <- decode(request.body),
         {:ok, upsert} <- checked(Memory.upsert_request(body)) do
      answer(Memory.upsert(context.worker, upsert))
    end
  end

  defp delete(request, context) do
    with {:ok, delete} <- checked(Memory.delete_request(request.query)) do
      answer(Memory.delete(context.worker, delete))
    end
  end

  # Reads need the /v1 bearer token when one is configured, or the admin token.
  defp readable(request, context, opts, fun) do
    admin? =
      case Request.header(request, "authorization") do
        "Bearer " <> token -> AdminToken.valid?(String.trim(token), opts[:admin_token])
        _ -> false
      end

    if admin? or Router.authorized?(request, Map.get(context, :api_token)) do
      fun.()
    else
      Json.error(401, "missing or wrong bearer token (API_TOKEN or the admin token)",
        code: "invalid_api_key"
      )
    end
  end

  defp decode(body) do
    case Json.decode(body) do
      {:ok, decoded} -> {:ok, decoded}
      {:error, message} -> Json.error(400, message, code: "invalid_json")
    end
  end

  defp checked({:ok, _} = ok), do: ok
  defp checked({:invalid, message, param}), do: Json.error(400, message, param: param)

  defp answer({:ok, json}), do: Json.respond(200, json)
  defp answer({:error, %Error{} = error}), do: Json.worker_error(error)
end
