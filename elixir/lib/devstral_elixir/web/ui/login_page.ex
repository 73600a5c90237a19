defmodule DevstralElixir.Web.UI.LoginPage do
  @moduledoc """
  `GET /login`, `POST /login` and `POST /logout`. The admin token (see
  `DevstralElixir.Jobs.AdminToken`) logs in as admin; `API_TOKEN`, when set,
  logs in as a user (the assistant and the read-only pages). A login is a
  session cookie (`HttpOnly; SameSite=Strict`).
  """

  alias DevstralElixir.Jobs.AdminToken
  alias DevstralElixir.Web.Request
  alias DevstralElixir.Web.UI.{Auth, Response, Sessions, Views}

  @doc "The login form."
  @spec show(Request.t(), map()) :: Request.response()
  def show(request, env), do: form(200, nil, next(request.query["next"]), env)

  @doc "Checks the token and starts a session."
  @spec login(Request.t(), map()) :: Request.response()
  def login(_request, %{ui: ui, params: params, context: context} = env) do
    token = String.trim(params["token"] || "")
    next = next(params["next"])

    case role(token, context.api_token) do
      nil ->
        form(401, "That token is neither the admin token nor the API token.", next, env)

      role ->
        Sessions.delete(ui.session)
        Response.redirect(next, ui, [Auth.session_cookie(Sessions.create(role))])
    end
  end

  @doc "Ends the session."
  @spec logout(Request.t(), map()) :: Request.response()
  def logout(_request, %{ui: ui}) do
    Sessions.delete(ui.session)
    Response.redirect("/", ui, [Auth.clear_session_cookie()])
  end

  defp role(token, api_token) do
    cond do
      AdminToken.valid?(token) -> :admin
      is_binary(api_token) and equal?(token, api_token) -> :user
      true -> nil
    end
  end

  defp equal?(a, b), do: byte_size(a) == byte_size(b) and :crypto.hash_equals(a, b)

  defp form(status, error, next, %{ui: ui, context: context}) do
    content =
      Views.login(%{ui: ui, error: error, next: next, api_token?: context.api_token != nil})

    Response.html(status, Views.page(:login, "Log in", content, ui), ui)
  end

  # Only a local path: never an open redirect to another site.
  defp next("/" <> rest = path) do
    if String.starts_with?(rest, ["/", "\\"]), do: "/", else: path
  end

  defp next(_other), do: "/"
end
