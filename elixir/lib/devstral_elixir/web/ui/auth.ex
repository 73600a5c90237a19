defmodule DevstralElixir.Web.UI.Auth do
  @moduledoc """
  Who a web UI request comes from, and the checks on what it may do.

    * The browser id (`devstral_browser` cookie, made on a first visit) keys
      the browser's conversations and its CSRF token.
    * A login (`devstral_session` cookie, see `DevstralElixir.Web.UI.Sessions`)
      gives the role `:admin` (logged in with the admin token) or `:user`
      (logged in with `API_TOKEN`).
    * Every state-changing request carries the CSRF token, in the
      `x-csrf-token` header (scripts, htmx) or the `_csrf` form field.

  Both cookies are `HttpOnly; SameSite=Strict; Path=/`.
  """

  alias DevstralElixir.Web.{Json, Request}
  alias DevstralElixir.Web.UI.Sessions

  @browser_cookie "devstral_browser"
  @session_cookie "devstral_session"

  defstruct [:browser, :session, :role, :csrf, new_browser?: false]

  @type t :: %__MODULE__{
          browser: String.t(),
          session: String.t() | nil,
          role: Sessions.role() | nil,
          csrf: String.t(),
          new_browser?: boolean()
        }

  @doc "Identifies the request's browser and session."
  @spec identify(Request.t()) :: t()
  def identify(%Request{} = request) do
    cookies = cookies(request)

    {browser, new?} =
      case cookies[@browser_cookie] do
        id when is_binary(id) and byte_size(id) in 16..64 -> {id, false}
        _ -> {Sessions.random_id(), true}
      end

    session = cookies[@session_cookie]

    %__MODULE__{
      browser: browser,
      new_browser?: new?,
      session: session,
      role: Sessions.role(session),
      csrf: Sessions.csrf_token(browser)
    }
  end

  @doc "The request's cookies as a map (the first value of a repeated name)."
  @spec cookies(Request.t()) :: %{String.t() => String.t()}
  def cookies(%Request{} = request) do
    (Request.header(request, "cookie") || "")
    |> String.split(";", trim: true)
    |> Enum.reduce(%{}, fn pair, acc ->
      case String.split(String.trim(pair), "=", parts: 2) do
        [name, value] -> Map.put_new(acc, name, value)
        _ -> acc
      end
    end)
  end

  @doc """
  The request's parameters: a JSON object body, or a form body
  (`application/x-www-form-urlencoded`). `{:error, message}` for a body that
  is neither.
  """
  @spec params(Request.t()) :: {:ok, map()} | {:error, String.t()}
  def params(%Request{} = request) do
    if json?(request) do
      case Json.decode(request.body) do
        {:ok, %{} = map} -> {:ok, map}
        {:ok, _} -> {:error, "the body must be a JSON object"}
        {:error, message} -> {:error, message}
      end
    else
      {:ok, URI.decode_query(request.body)}
    end
  rescue
    ArgumentError -> {:error, "the form body is malformed"}
  end

  @doc "True when the request's body (and so its answer) is JSON."
  @spec json?(Request.t()) :: boolean()
  def json?(request),
    do: String.starts_with?(Request.header(request, "content-type") || "", "application/json")

  @doc "True when the request carries this browser's CSRF token (header or `_csrf` field)."
  @spec csrf_ok?(Request.t(), t(), map()) :: boolean()
  def csrf_ok?(request, %__MODULE__{} = ui, params \\ %{}) do
    given = Request.header(request, "x-csrf-token") || params["_csrf"]
    not ui.new_browser? and Sessions.valid_csrf?(given, ui.browser)
  end

  @doc """
  True when a `/v1` request may go through on the strength of a UI login
  (the assistant page calls the OpenAI API with its session cookie): a live
  session, and for anything but GET the CSRF header.
  """
  @spec api_session?(Request.t()) :: boolean()
  def api_session?(%Request{} = request) do
    ui = identify(request)
    ui.role != nil and (request.method == "GET" or csrf_ok?(request, ui))
  end

  @doc "The `set-cookie` header that stores the browser id, when the request had none."
  @spec browser_cookie(t()) :: [{String.t(), String.t()}]
  def browser_cookie(%__MODULE__{new_browser?: true, browser: id}),
    do: [{"set-cookie", cookie(@browser_cookie, id, 400 * 24 * 3600)}]

  def browser_cookie(_ui), do: []

  @doc "The `set-cookie` header of a new login session."
  @spec session_cookie(String.t()) :: {String.t(), String.t()}
  def session_cookie(id), do: {"set-cookie", cookie(@session_cookie, id, 12 * 3600)}

  @doc "The `set-cookie` header that ends the login session."
  @spec clear_session_cookie() :: {String.t(), String.t()}
  def clear_session_cookie, do: {"set-cookie", cookie(@session_cookie, "", 0)}

  defp cookie(name, value, max_age),
    do: "#{name}=#{value}; Path=/; Max-Age=#{max_age}; HttpOnly; SameSite=Strict"
end
