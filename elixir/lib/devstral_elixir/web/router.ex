defmodule DevstralElixir.Web.Router do
  @moduledoc """
  Maps requests to handlers:

    * `GET /health` - `DevstralElixir.Web.Health`
    * `/v1/*` - the OpenAI-compatible API, `DevstralElixir.Web.OpenAI`, and
      `POST /v1/embeddings`, `DevstralElixir.Web.Embeddings` (bearer
      `API_TOKEN` required when one is configured)
    * `/api/jobs*` - the job queue, `DevstralElixir.Web.JobsApi` (its writes
      need the admin token)
    * `/api/adapters*` - trained adapters, `DevstralElixir.Web.AdaptersApi`
      (activation and rollback need the admin token)
    * `/api/rag/*` - the RAG memory, `DevstralElixir.Web.RagApi` (reads need
      what `/v1` needs, writes the admin token)
    * `/`, `/jobs`, `/datasets`, `/adapters`, `/login`, `/ui/*`, `/static/*` -
      the web UI, `DevstralElixir.Web.UI.Router` (a UI login also opens
      `/v1`, with the CSRF header on POSTs, so the assistant page can stream)

  Every handler returns `{status, headers, body}` or, for a streamed body,
  `{:stream, status, headers, producer}` (see `DevstralElixir.Web.Appmod`).
  """

  alias DevstralElixir.Web.{
    AdaptersApi,
    Embeddings,
    Health,
    JobsApi,
    Json,
    OpenAI,
    RagApi,
    Request,
    UI
  }

  @type context :: %{worker: GenServer.server(), api_token: String.t() | nil}
  @type result ::
          Request.response()
          | {:stream, pos_integer(), [{String.t(), String.t()}], pid()}

  @doc "Routes one request."
  @spec route(Request.t(), context()) :: result()
  def route(%Request{method: "GET", path: ["health"]}, context), do: Health.show(context)

  def route(%Request{path: ["v1" | rest]} = request, context) do
    if authorized?(request, context.api_token) or UI.Auth.api_session?(request) do
      route_v1(request.method, rest, request, context)
    else
      Json.error(401, "missing or wrong bearer token", code: "invalid_api_key")
    end
  end

  def route(%Request{path: ["api", "jobs" | _]} = request, _context), do: JobsApi.handle(request)

  def route(%Request{path: ["api", "adapters" | _]} = request, context),
    do: AdaptersApi.handle(request, context)

  def route(%Request{path: ["api", "rag" | _]} = request, context),
    do: RagApi.handle(request, context)

  def route(%Request{path: path} = request, context) do
    if UI.Router.handles?(path), do: UI.Router.route(request, context), else: not_found(request)
  end

  defp not_found(%Request{method: method, path: path}) do
    Json.error(404, "no route for #{method} /#{Enum.join(path, "/")}", code: "not_found")
  end

  defp route_v1("POST", ["embeddings"], request, context), do: Embeddings.create(request, context)
  defp route_v1(method, rest, request, context), do: OpenAI.route(method, rest, request, context)

  @doc "True when no token is configured or the request carries it as a bearer token."
  @spec authorized?(Request.t(), String.t() | nil) :: boolean()
  def authorized?(_request, nil), do: true

  def authorized?(request, token) do
    case Request.header(request, "authorization") do
      "Bearer " <> given ->
        byte_size(given) == byte_size(token) and :crypto.hash_equals(given, token)

      _ ->
        false
    end
  end
end
