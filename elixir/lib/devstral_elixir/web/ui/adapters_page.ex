defmodule DevstralElixir.Web.UI.AdaptersPage do
  @moduledoc """
  `/adapters`: the adapter registry (the same listing as `GET /api/adapters`):
  each adapter's stage, base model, metrics, gate verdict, pass@1 when an
  evaluation recorded it, and last smoke test; and, for admins, activate and
  roll back (`POST /ui/adapters/activate` with `adapter`, `POST
  /ui/adapters/rollback`), which answer the page with the outcome.
  """

  alias DevstralElixir.Web.{AdaptersApi, Json, Request}
  alias DevstralElixir.Web.UI.{Response, Views}

  @doc "The registry page."
  @spec index(Request.t(), map()) :: Request.response()
  def index(_request, env), do: render(200, nil, env)

  @doc "Activate or roll back, then the page with the outcome."
  @spec act(String.t(), Request.t(), map()) :: Request.response()
  def act("activate", request, %{params: params, context: context} = env) do
    case params["adapter"] do
      name when is_binary(name) ->
        outcome(AdaptersApi.activate_adapter(context, name), "activated #{blank(name)}", env)

      _ ->
        Response.error(400, "adapter is required", request, env.ui)
    end
  end

  def act("rollback", _request, %{context: context} = env),
    do: outcome(AdaptersApi.rollback_adapter(context), "rolled back", env)

  def act(action, request, env),
    do: Response.error(404, "no adapter action #{action}", request, env.ui)

  defp outcome({200, _headers, body}, what, env) do
    {:ok, reply} = Json.decode(body)
    render(200, {"ok", "#{what}; active: #{blank(reply["active"])}"}, env)
  end

  defp outcome({status, _headers, body}, _what, env) do
    message =
      case Json.decode(body) do
        {:ok, %{"error" => %{"message" => message}}} -> message
        _ -> "the worker answered #{status}"
      end

    render(status, {"error", message}, env)
  end

  defp render(status, notice, %{ui: ui, context: context}) do
    {listing, error} =
      case AdaptersApi.listing(context) do
        {:ok, listing} -> {listing, nil}
        {:error, {_status, _headers, body}} -> {%{"adapters" => []}, error_message(body)}
      end

    content =
      Views.adapters(%{
        listing: listing,
        error: error,
        notice: notice,
        admin?: ui.role == :admin,
        csrf: ui.csrf
      })

    Response.html(status, Views.page(:adapters, "Adapters", content, ui), ui)
  end

  defp error_message(body) do
    case Json.decode(body) do
      {:ok, %{"error" => %{"message" => message}}} -> "The registry is unavailable: #{message}"
      _ -> "The registry is unavailable."
    end
  end

  defp blank(""), do: "the base model"
  defp blank(nil), do: "the base model"
  defp blank(name), do: name
end
