defmodule DevstralElixir.Web.UI.ChatPage do
  @moduledoc """
  The assistant page (`GET /`) and this browser's conversations
  (`/ui/conversations`, see `DevstralElixir.Web.UI.Conversations`).

  The page is rendered here with the conversation's messages (escaped; the
  browser renders the assistant's Markdown with markdown-it, raw HTML off).
  `priv/static/app.js` then streams each answer from `POST
  /v1/chat/completions` (the same OpenAI endpoint every client uses, with
  this page's session cookie and CSRF header) and stores the user's message
  before and the answer after through these endpoints:

    * `GET /ui/conversations` - `{"conversations": [...]}` without messages;
    * `POST /ui/conversations` - a new one (`{"title"}` optional): 201 JSON,
      or a redirect to it for a form;
    * `GET /ui/conversations/ID` - one with its messages;
    * `POST /ui/conversations/ID/messages` - `{"role", "content", "model",
      "sources"}` appended; answers the conversation;
    * `POST /ui/conversations/ID/rename` (`title`), `POST .../delete`.
  """

  alias DevstralElixir.Web.{OpenAI, Request}
  alias DevstralElixir.Web.UI.{Conversations, Response, Views}
  alias DevstralElixir.Worker

  @doc "The assistant page."
  @spec show(Request.t(), map()) :: Request.response()
  def show(request, %{ui: ui, context: context}) do
    with {:ok, conversations} <- Conversations.list(ui.browser) do
      conversation =
        case request.query["c"] do
          id when is_binary(id) ->
            case Conversations.get(ui.browser, id) do
              {:ok, conv} -> conv
              _ -> nil
            end

          _ ->
            nil
        end

      content =
        Views.chat(%{
          ui: ui,
          conversations: conversations,
          conversation: conversation,
          default_model: default_model(context)
        })

      Response.html(200, Views.page(:chat, "Assistant", content, ui), ui)
    else
      {:error, message} -> Response.error(503, message, request, ui)
    end
  end

  # The select lists the served base model until app.js has read /v1/models.
  defp default_model(context) do
    case Worker.info_or_down(context.worker) do
      %{model: model} when model != nil -> OpenAI.served_name(model, context)
      _ -> "default model"
    end
  catch
    :exit, _ -> "default model"
  end

  @doc "The `/ui/conversations...` endpoints (the path after `conversations`)."
  @spec api(String.t(), [String.t()], Request.t(), map()) :: Request.response()
  def api("GET", [], request, %{ui: ui}) do
    reply(request, ui, Conversations.list(ui.browser), &%{"conversations" => &1})
  end

  def api("POST", [], request, %{ui: ui, params: params}) do
    case Conversations.create(ui.browser, blank_to_nil(params["title"])) do
      {:ok, conv} ->
        if form?(request),
          do: Response.redirect("/?c=" <> conv["id"], ui),
          else: Response.json(201, conv, ui)

      error ->
        reply(request, ui, error, & &1)
    end
  end

  def api("GET", [id], request, %{ui: ui}),
    do: reply(request, ui, Conversations.get(ui.browser, id), & &1)

  def api("POST", [id, "messages"], request, %{ui: ui, params: params}),
    do: reply(request, ui, Conversations.append(ui.browser, id, params), & &1)

  def api("POST", [id, "rename"], request, %{ui: ui, params: params}) do
    case Conversations.rename(ui.browser, id, params["title"]) do
      {:ok, conv} ->
        if form?(request),
          do: Response.redirect("/?c=" <> id, ui),
          else: Response.json(200, conv, ui)

      error ->
        reply(request, ui, error, & &1)
    end
  end

  def api("POST", [id, "delete"], request, %{ui: ui}) do
    case Conversations.delete(ui.browser, id) do
      :ok ->
        if form?(request),
          do: Response.redirect("/", ui),
          else: Response.json(200, %{"deleted" => id}, ui)

      error ->
        reply(request, ui, error, & &1)
    end
  end

  def api(method, path, request, %{ui: ui}) do
    Response.error(
      404,
      "no route for #{method} /ui/conversations/#{Enum.join(path, "/")}",
      request,
      ui
    )
  end

  defp reply(request, ui, result, shape) do
    case result do
      {:ok, value} ->
        Response.json(200, shape.(value), ui)

      {:error, :not_found} ->
        Response.error(404, "no such conversation in this browser", request, ui)

      {:error, message} when is_binary(message) ->
        Response.error(400, message, request, ui)
    end
  end

  defp form?(request), do: Request.header(request, "x-csrf-token") == nil

  defp blank_to_nil(value) when value in [nil, ""], do: nil
  defp blank_to_nil(value), do: value
end
