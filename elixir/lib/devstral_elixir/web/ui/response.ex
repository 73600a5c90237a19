defmodule DevstralElixir.Web.UI.Response do
  @moduledoc """
  The web UI's responses. Every one carries the security headers: a
  Content-Security-Policy of `default-src 'self'` (no inline script or
  style, nothing from another origin), `nosniff`, no framing, and a
  same-origin referrer; and the browser-id cookie on a first visit.
  """

  alias DevstralElixir.Web.{Json, Request}
  alias DevstralElixir.Web.UI.Auth

  @csp "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'"

  @doc "The security headers every UI response has."
  @spec security_headers() :: [{String.t(), String.t()}]
  def security_headers do
    [
      {"content-security-policy", @csp},
      {"x-content-type-options", "nosniff"},
      {"x-frame-options", "DENY"},
      {"referrer-policy", "same-origin"}
    ]
  end

  @doc "An HTML response."
  @spec html(pos_integer(), iodata(), Auth.t(), [{String.t(), String.t()}]) :: Request.response()
  def html(status, body, ui, headers \\ []) do
    {status,
     [{"content-type", "text/html; charset=utf-8"}, {"cache-control", "no-store"}] ++
       headers ++ security_headers() ++ Auth.browser_cookie(ui), body}
  end

  @doc "A JSON response."
  @spec json(pos_integer(), term(), Auth.t()) :: Request.response()
  def json(status, term, ui) do
    {status, headers, body} = Json.respond(status, term)
    {status, headers ++ security_headers() ++ Auth.browser_cookie(ui), body}
  end

  @doc "An error: JSON for a JSON request, else a short HTML page."
  @spec error(pos_integer(), String.t(), Request.t(), Auth.t()) :: Request.response()
  def error(status, message, request, ui) do
    if Auth.json?(request) or Request.header(request, "x-csrf-token") != nil do
      {status, headers, body} = Json.error(status, message)
      {status, headers ++ security_headers() ++ Auth.browser_cookie(ui), body}
    else
      html(
        status,
        [
          "<!doctype html><meta charset=utf-8><title>Error</title><p role=alert>",
          DevstralElixir.Web.HTML.escape(message),
          ~s(</p><p><a href="/">Back</a></p>)
        ],
        ui
      )
    end
  end

  @doc "A 303 redirect (after a form POST, or to the login page)."
  @spec redirect(String.t(), Auth.t(), [{String.t(), String.t()}]) :: Request.response()
  def redirect(to, ui, headers \\ []) do
    {303,
     [{"location", to}, {"content-type", "text/plain"}] ++
       headers ++
       security_headers() ++ Auth.browser_cookie(ui), "see #{to}"}
  end
end
