defmodule DevstralElixir.Web.RouterTest do
  use ExUnit.Case, async: true

  alias DevstralElixir.Web.{Request, Router}

  @context %{worker: :no_such_worker, api_token: "s3cret", max_body_bytes: 1024}

  test "/v1 needs the bearer token when one is configured" do
    request = %Request{method: "GET", path: ["v1", "models"]}
    assert {401, _, body} = Router.route(request, @context)
    assert body =~ "invalid_api_key"

    wrong = %{request | headers: %{"authorization" => "Bearer nope"}}
    assert {401, _, _} = Router.route(wrong, @context)

    # The right token gets through to the API, which reports the missing worker.
    right = %{request | headers: %{"authorization" => "Bearer s3cret"}}
    assert {503, _, body} = Router.route(right, @context)
    assert body =~ "worker_unavailable"
  end

  test "no token configured: /v1 is open; unknown routes are 404 JSON" do
    open = %{@context | api_token: nil}
    assert {503, _, _} = Router.route(%Request{method: "GET", path: ["v1", "models"]}, open)
    assert {404, _, body} = Router.route(%Request{method: "GET", path: ["nope"]}, open)
    assert body =~ "no route for GET /nope"
  end

  test "/health answers even when the worker is missing" do
    assert {200, _, body} = Router.route(%Request{method: "GET", path: ["health"]}, @context)
    assert body =~ ~s("status":"down")
  end
end
