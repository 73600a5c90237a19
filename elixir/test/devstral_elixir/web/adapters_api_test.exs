defmodule DevstralElixir.Web.AdaptersApiTest do
  # The checks the API makes before it asks the worker; the worker's side
  # (registry, activation, rollback) is exercised end to end in
  # tests/test_adapters_e2e.py against the real host.
  use ExUnit.Case, async: true

  alias DevstralElixir.Jobs.AdminToken
  alias DevstralElixir.Web.{AdaptersApi, Request}

  @context %{worker: :no_such_worker, api_token: nil}

  setup do
    name = :"admin_token_#{System.unique_integer([:positive])}"
    start_supervised!({AdminToken, name: name, token: "adm1n", data_dir: nil})
    %{opts: [admin_token: name]}
  end

  defp post(path, body, token) do
    headers = if token, do: %{"authorization" => "Bearer " <> token}, else: %{}
    %Request{method: "POST", path: ["api", "adapters", path], headers: headers, body: body}
  end

  test "activate and rollback need the admin token", %{opts: opts} do
    for {path, body} <- [{"activate", ~s({"adapter": "run/stage1"})}, {"rollback", ""}],
        token <- [nil, "wrong"] do
      assert {401, _, answer} = AdaptersApi.handle(post(path, body, token), @context, opts)
      assert answer =~ "invalid_admin_token"
    end
  end

  test "the activate body must be {\"adapter\": ID}", %{opts: opts} do
    for {body, expected} <- [
          {"nope", "invalid_json"},
          {"[1]", "the body must be a JSON object"},
          {~s({"adapter": 3}), "adapter must be a string"},
          {~s({"adapter": "a", "force": true}), "unknown field \\\"force\\\""}
        ] do
      assert {400, _, answer} =
               AdaptersApi.handle(post("activate", body, "adm1n"), @context, opts)

      assert answer =~ expected
    end
  end

  test "without a worker the API answers 503", %{opts: opts} do
    get = %Request{method: "GET", path: ["api", "adapters"]}
    assert {503, _, answer} = AdaptersApi.handle(get, @context, opts)
    assert answer =~ "worker_unavailable"

    request = post("activate", ~s({"adapter": "run/stage1"}), "adm1n")
    assert {503, _, _} = AdaptersApi.handle(request, @context, opts)
  end

  test "wrong methods are 405 with allow; unknown paths 404", %{opts: opts} do
    put = %Request{method: "PUT", path: ["api", "adapters"]}
    assert {405, headers, _} = AdaptersApi.handle(put, @context, opts)
    assert {"allow", "GET"} in headers

    get = %Request{method: "GET", path: ["api", "adapters", "rollback"]}
    assert {405, headers, _} = AdaptersApi.handle(get, @context, opts)
    assert {"allow", "POST"} in headers

    nope = %Request{method: "GET", path: ["api", "adapters", "x", "y"]}
    assert {404, _, _} = AdaptersApi.handle(nope, @context, opts)
  end
end
