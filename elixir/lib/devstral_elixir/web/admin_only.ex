defmodule DevstralElixir.Web.AdminOnly do
  @moduledoc """
  The one admin check of the HTTP API: state-changing routes (jobs, adapters)
  run only for a request that carries the admin token as a bearer token.
  """

  alias DevstralElixir.Jobs.AdminToken
  alias DevstralElixir.Web.{Json, Request}

  @doc """
  Runs `fun` when `request` carries `authorization: Bearer <token>` matching
  `opts[:admin_token]`; otherwise answers 401 saying which header is needed.
  """
  @spec run(Request.t(), keyword(), (() -> Request.response())) :: Request.response()
  def run(%Request{} = request, opts, fun) do
    given =
      case Request.header(request, "authorization") do
        "Bearer " <> token -> String.trim(token)
        _ -> nil
      end

    if AdminToken.valid?(given, opts[:admin_token]) do
      fun.()
    else
      Json.error(401, "this endpoint needs the admin token: authorization: Bearer <ADMIN_TOKEN>",
        code: "invalid_admin_token"
      )
    end
  end
end
