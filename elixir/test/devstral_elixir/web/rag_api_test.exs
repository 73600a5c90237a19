defmodule DevstralElixir.Web.RagApiTest do
  # No worker runs here: bad input must be refused before any worker call, and
  # a good request reaches the (missing) worker, which answers 503.
  use ExUnit.Case, async: true

  alias DevstralElixir.Jobs.AdminToken
  alias DevstralElixir.Web.{Json, RagApi, Request}

  @admin "rag-admin-token"

  setup do
    name = :"rag_api_token_#{System.unique_integer([:positive])}"
    start_supervised!({AdminToken, name: name, token: @admin, data_dir: nil})
    %{admin: name}
  end

  defp call(ctx, method, path, opts \\ []) do
    headers =
      case Keyword.get(opts, :token) do
        nil -> %{}
        token -> %{"authorization" => "Bearer " <> token}
      end

    request = %Request{
      method: method,
      path: String.split(path, "/", trim: true),
      query: Keyword.get(opts, :query, %{}),
      headers: headers,
      body: Keyword.get(opts, :body, "")
    }

    context = %{worker: :no_such_worker, api_token: Keyword.get(opts, :api_token)}
    {status, headers, body} = RagApi.handle(request, context, admin_token: ctx.admin)
    {:ok, json} = Json.decode(IO.iodata_to_binary(body))
    {status, Map.new(headers), json}
  end

  test "bad searches are 400s naming the field", ctx do
    for {body, param} <- [
          {~s({"top_k": 3}), "query"},
          {~s({"query": "q", "top_k": 500}), "top_k"},
          {~s({"query": "q", "filters": {"owner": "me"}}), "filters"}
        ] do
      assert {400, _, %{"error" => error}} = call(ctx, "POST", "/api/rag/search", body: body)
      assert error["param"] == param
    end

    assert {400, _, %{"error" => %{"code" => "invalid_json"}}} =
             call(ctx, "POST", "/api/rag/search", body: "{nope")
  end

  test "a good search reaches the worker", ctx do
    assert {503, _, %{"error" => %{"code" => "worker_unavailable"}}} =
             call(ctx, "POST", "/api/rag/search", body: ~s({"query": "supervisors"}))

    assert {503, _, _} = call(ctx, "GET", "/api/rag/stats")
  end

  test "reads need API_TOKEN when one is set (or the admin token)", ctx do
    search = [body: ~s({"query": "q"}), api_token: "api-secret"]
    assert {401, _, _} = call(ctx, "POST", "/api/rag/search", search)
    assert {401, _, _} = call(ctx, "POST", "/api/rag/search", [token: "wrong"] ++ search)
    assert {503, _, _} = call(ctx, "POST", "/api/rag/search", [token: "api-secret"] ++ search)
    assert {503, _, _} = call(ctx, "POST", "/api/rag/search", [token: @admin] ++ search)
  end

  test "writes need the admin token; their input is checked", ctx do
    body = ~s({"documents": [{"text": "t", "source": "s"}]})
    assert {401, _, %{"error" => error}} = call(ctx, "POST", "/api/rag/documents", body: body)
    assert error["message"] =~ "admin token"

    assert {401, _, _} =
             call(ctx, "DELETE", "/api/rag/documents", query: %{"source" => "s"}, token: "api")

    assert {503, _, _} = call(ctx, "POST", "/api/rag/documents", body: body, token: @admin)

    assert {400, _, %{"error" => %{"param" => "documents"} = error}} =
             call(ctx, "POST", "/api/rag/documents",
               body: ~s({"documents": [{"text": "t"}]}),
               token: @admin
             )

    assert error["message"] =~ "documents[0]: source is required"

    assert {400, _, %{"error" => %{"param" => "source"}}} =
             call(ctx, "DELETE", "/api/rag/documents", token: @admin)

    assert {503, _, _} =
             call(ctx, "DELETE", "/api/rag/documents", query: %{"source" => "s"}, token: @admin)
  end

  test "wrong methods and unknown paths", ctx do
    assert {405, %{"allow" => "POST"}, _} = call(ctx, "GET", "/api/rag/search")
    assert {405, %{"allow" => "GET"}, _} = call(ctx, "POST", "/api/rag/stats")
    assert {405, %{"allow" => "POST, DELETE"}, _} = call(ctx, "GET", "/api/rag/documents")
    assert {404, _, _} = call(ctx, "GET", "/api/rag/nope")
  end
end
