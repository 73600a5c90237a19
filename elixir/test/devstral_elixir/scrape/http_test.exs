defmodule DevstralElixir.Scrape.HttpTest do
  use ExUnit.Case, async: true

  alias DevstralElixir.Scrape.{Http, Limiter}
  alias DevstralElixir.Test.Scrape.{FakeServer, Tmp}

  @moduletag :capture_log

  # Serves `responses` in order for every path, the last one repeating.
  defp serve(responses) do
    {:ok, agent} = Agent.start_link(fn -> responses end)

    server =
      start_supervised!(
        {FakeServer,
         fn _request ->
           Agent.get_and_update(agent, fn
             [last] -> {last, [last]}
             [next | rest] -> {next, rest}
           end)
         end}
      )

    {server, FakeServer.url(server)}
  end

  defp client(extra \\ []) do
    test = self()

    Http.new(
      Keyword.merge(
        [sleep: &send(test, {:slept, &1}), backoff_base_ms: 100, max_retries: 2],
        extra
      )
    )
  end

  test "retries 5xx with growing, jittered backoff, then succeeds" do
    json = {200, [{"content-type", "application/json"}], ~s({"ok":true})}
    {server, url} = serve([{500, [], "boom"}, {503, [], "busy"}, json])

    assert {:ok, %{"ok" => true}} = Http.get_json(client(), url <> "/x")
    assert_received {:slept, first} when first in 50..100
    assert_received {:slept, second} when second in 100..200
    assert length(FakeServer.requests(server)) == 3

    assert Enum.all?(
             FakeServer.requests(server),
             &(&1.headers["user-agent"] =~ "devstral_elixir")
           )
  end

  test "gives up after the retries with the last reason" do
    {_server, url} = serve([{502, [], "bad gateway"}])
    assert {:error, {:server_error, detail}} = Http.get(client(), url <> "/x")
    assert detail =~ "status 502 (gave up after 3 attempts)"
  end

  test "4xx is not retried; HTML is not JSON" do
    {server, url} = serve([{404, [], "missing"}])
    assert {:error, {:http_error, detail}} = Http.get(client(), url <> "/gone")
    assert detail =~ "/gone: status 404"
    assert length(FakeServer.requests(server)) == 1

    {_server, url} = serve([{200, [{"content-type", "application/json"}], "<html>oops</html>"}])
    assert {:error, {:bad_json, detail}} = Http.get_json(client(), url <> "/x")
    assert detail =~ "invalid JSON"
  end

  test "follows relative redirects, and stops a redirect loop" do
    {_server, url} = serve([{302, [{"location", "/next"}], ""}, {200, [], "done"}])
    assert {:ok, %{body: "done", url: final}} = Http.get(client(), url <> "/start")
    assert final == url <> "/next"

    {_server, url} = serve([{301, [{"location", "/again"}], ""}])
    assert {:error, {:http_error, detail}} = Http.get(client(max_redirects: 3), url <> "/loop")
    assert detail =~ "more than 3 redirects"
  end

  test "a request that hangs times out and is retried" do
    {server, url} = serve([:hang])

    assert {:error, {:network_error, detail}} =
             Http.get(client(timeout_ms: 150, max_retries: 1), url <> "/slow")

    assert detail =~ "timed out (gave up after 2 attempts)"
    assert length(FakeServer.requests(server)) == 2

    path = Path.join(Tmp.dir!(), "f")
    http = client(timeout_ms: 150, max_retries: 0)
    assert {:error, {:download_failed, detail}} = Http.download(http, url <> "/slow", path)
    assert detail =~ "timed out (gave up after 1 attempts)"
  end

  test "x-ratelimit-remaining 0 holds the limiter until the reset" do
    {:ok, limiter} = Limiter.start_link(interval_ms: 0)
    reset = System.os_time(:second) + 30
    headers = [{"x-ratelimit-remaining", "0"}, {"x-ratelimit-reset", Integer.to_string(reset)}]
    {_server, url} = serve([{200, headers, "ok"}])

    assert {:ok, _} = Http.get(client(limiter: limiter), url)
    assert Limiter.reserve(limiter) > 25_000
  end

  test "a 429 for longer than max_wait_ms gives up instead of waiting" do
    reset = System.os_time(:second) + 3_600
    {_server, url} = serve([{429, [{"x-ratelimit-reset", Integer.to_string(reset)}], ""}])
    assert {:error, {:rate_limited, detail}} = Http.get(client(max_wait_ms: 60_000), url)
    assert detail =~ "over the 60 s limit"
    refute_received {:slept, _}
  end

  test "retry-after is honoured" do
    {_server, url} = serve([{429, [{"retry-after", "7"}], ""}, {200, [], "ok"}])
    assert {:ok, %{body: "ok"}} = Http.get(client(), url)
    assert_received {:slept, 7_000}
  end

  test "ETag: If-None-Match on the second request, 304 gives the stored body" do
    cache = Tmp.dir!()
    {server, url} = serve([{200, [{"etag", ~s("v1")}], "[1,2]"}, {304, [{"etag", ~s("v1")}], ""}])
    http = client(cache_dir: cache)

    assert {:ok, %{body: "[1,2]"}} = Http.get(http, url <> "/list", cache: true)
    assert {:ok, %{status: 200, body: "[1,2]"}} = Http.get(http, url <> "/list", cache: true)
    assert [first, second] = FakeServer.requests(server)
    refute Map.has_key?(first.headers, "if-none-match")
    assert second.headers["if-none-match"] == ~s("v1")
  end

  test "download streams to a file with its SHA-256, and enforces the cap" do
    dir = Tmp.dir!()
    body = :crypto.strong_rand_bytes(200_000)
    {_server, url} = serve([{200, [], body}])
    path = Path.join(dir, "file.bin")

    assert {:ok, %{bytes: 200_000, sha256: sha}} = Http.download(client(), url <> "/f", path)
    assert sha == Base.encode16(:crypto.hash(:sha256, body), case: :lower)
    assert File.read!(path) == body

    assert {:error, {:too_large, detail}} =
             Http.download(client(), url <> "/f", path, max_bytes: 1_000)

    assert detail =~ "over the 1000-byte cap"
  end

  test "a connection dropped mid-download is retried, then reported" do
    body = :binary.copy("x", 100_000)
    {server, url} = serve([{:drop, 200, [], body, 40_000}, {200, [], body}])
    path = Path.join(Tmp.dir!(), "f")
    assert {:ok, %{bytes: 100_000}} = Http.download(client(), url <> "/f", path)
    assert File.stat!(path).size == 100_000
    assert length(FakeServer.requests(server)) == 2

    {_server, url} = serve([{:drop, 200, [], body, 40_000}])

    assert {:error, {:download_failed, detail}} =
             Http.download(client(max_retries: 1), url <> "/f", path)

    assert detail =~ "connection dropped after 40000 of 100000 bytes (gave up after 2 attempts)"
  end

  test "bad URLs and TLS settings" do
    assert {:error, {:bad_url, _}} = Http.get(client(), "ftp://example.com/x")
    ssl = Http.ssl_options()
    assert ssl[:verify] == :verify_peer
    assert is_list(ssl[:cacerts]) and ssl[:cacerts] != []
    assert [match_fun: fun] = ssl[:customize_hostname_check]
    assert is_function(fun, 2)
  end

  test "TLS: a certificate the system CA store does not vouch for is refused" do
    %{server_config: server} =
      :public_key.pkix_test_data(%{
        server_chain: %{root: [key: ec()], peer: [key: ec()]},
        client_chain: %{root: [key: ec()], peer: [key: ec()]}
      })

    {:ok, _} = Application.ensure_all_started(:ssl)
    {:ok, listen} = :ssl.listen(0, [:binary, active: false, reuseaddr: true] ++ server)
    {:ok, {_, port}} = :ssl.sockname(listen)

    spawn_link(fn ->
      {:ok, socket} = :ssl.transport_accept(listen)
      # The client aborts the handshake.
      {:error, _} = :ssl.handshake(socket, 5_000)
    end)

    # Not retried: a certificate that fails will fail again.
    assert {:error, {:tls_error, detail}} = Http.get(client(), "https://localhost:#{port}/")
    refute_received {:slept, _}

    assert detail =~ "unknown_ca"
  end

  defp ec, do: {:namedCurve, :secp256r1}

  test "the limiter spaces slots" do
    {:ok, limiter} = Limiter.start_link(interval_ms: 1_000)
    waits = for _ <- 1..3, do: Limiter.reserve(limiter)
    assert [a, b, c] = waits
    assert a == 0 and b in 900..1_000 and c in 1_900..2_000
    assert_raise ArgumentError, fn -> Limiter.start_link(interval_ms: -1) end
  end
end
