defmodule DevstralElixir.Web.UI.RouterTest do
  use ExUnit.Case, async: true

  alias DevstralElixir.Web.{Request, Router}
  alias DevstralElixir.Web.UI.Sessions

  @open %{worker: :no_such_worker, api_token: nil, max_body_bytes: 1024}
  @locked %{@open | api_token: "s3cret"}
  @browser "browser-id-for-the-router-test"

  defp request(method, path, opts \\ []) do
    cookie = Keyword.get(opts, :cookie, "devstral_browser=#{@browser}")
    headers = Map.merge(%{"cookie" => cookie}, Keyword.get(opts, :headers, %{}))
    %Request{method: method, path: path, headers: headers, body: Keyword.get(opts, :body, "")}
  end

  defp header(headers, name), do: for({^name, value} <- headers, do: value)

  test "every page carries the CSP, and a first visit gets a strict, HttpOnly browser cookie" do
    {200, headers, body} = Router.route(request("GET", ["login"], cookie: ""), @open)

    assert header(headers, "content-security-policy") == [
             "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'"
           ]

    [cookie] = header(headers, "set-cookie")
    assert cookie =~ ~r/^devstral_browser=[\w-]+; Path=\/; .*HttpOnly; SameSite=Strict$/
    refute body =~ "<script>"
  end

  test "with API_TOKEN set, every page and endpoint needs a login" do
    assert {303, headers, _} = Router.route(request("GET", []), @locked)
    assert header(headers, "location") == ["/login?next=%2F"]
    assert {303, _, _} = Router.route(request("GET", ["jobs", "3"]), @locked)
    assert {401, _, _} = Router.route(request("GET", ["ui", "events", "jobs"]), @locked)
    assert {401, _, _} = Router.route(request("GET", ["ui", "conversations"]), @locked)
    assert {200, _, _} = Router.route(request("GET", ["login"]), @locked)
  end

  test "a POST without this browser's CSRF token is refused before anything else" do
    assert {403, _, body} = Router.route(request("POST", ["ui", "conversations"]), @open)
    assert IO.iodata_to_binary(body) =~ "CSRF"

    other = Sessions.csrf_token("another-browser-id-123")
    forged = request("POST", ["ui", "jobs"], headers: %{"x-csrf-token" => other})
    assert {403, _, _} = Router.route(forged, @open)

    # The right token, but no admin session.
    good =
      request("POST", ["ui", "jobs"], headers: %{"x-csrf-token" => Sessions.csrf_token(@browser)})

    assert {401, _, body} = Router.route(good, @open)
    assert IO.iodata_to_binary(body) =~ "admin"
  end

  test "/v1 takes a UI login only with a live session, and POSTs only with the CSRF header" do
    assert {401, _, _} = Router.route(request("GET", ["v1", "models"]), @locked)

    start_supervised!(Sessions)
    cookie = "devstral_browser=#{@browser}; devstral_session=#{Sessions.create(:user)}"
    # Past the token check, the API reports the missing worker.
    assert {503, _, _} = Router.route(request("GET", ["v1", "models"], cookie: cookie), @locked)

    post = request("POST", ["v1", "chat", "completions"], cookie: cookie, body: "{}")
    assert {401, _, _} = Router.route(post, @locked)

    with_csrf = %{
      post
      | headers: Map.put(post.headers, "x-csrf-token", Sessions.csrf_token(@browser))
    }

    assert {status, _, _} = Router.route(with_csrf, @locked)
    assert status != 401
  end

  test "static files: only known types, never outside the static root" do
    assert {200, headers, _} = Router.route(request("GET", ["static", "app.js"]), @locked)
    assert header(headers, "content-type") == ["text/javascript; charset=utf-8"]
    assert {404, _, _} = Router.route(request("GET", ["static", "..", "..", "mix.exs"]), @open)
    assert {404, _, _} = Router.route(request("GET", ["static", "nope.js"]), @open)
  end
end
