defmodule DevstralElixir.Jobs.ClientTest do
  use ExUnit.Case, async: false

  import DevstralElixir.Test.Jobs.QueueHelpers

  alias DevstralElixir.Jobs.{AdminToken, Client}
  alias DevstralElixir.Test.Jobs.{EchoRunner, HttpStub}
  alias DevstralElixir.Web.{Json, JobsApi}

  setup do
    dir = tmp_dir("client")
    ctx = start_queue(dir, runners: %{evaluate: EchoRunner})
    # What a host that generated its token leaves for local tools (ADMIN_TOKEN,
    # when set in the environment, wins; the host then uses that one).
    File.write!(AdminToken.file(dir), "the-token\n")
    secret = AdminToken.for_client(dir)
    token = :"client_token_#{System.unique_integer([:positive])}"
    start_supervised!({AdminToken, name: token, token: secret, data_dir: nil})
    Map.merge(ctx, %{token: token, secret: secret})
  end

  defp host(ctx) do
    HttpStub.start!(fn request ->
      if match?(["api", "jobs" | _], request.path),
        do: JobsApi.handle(request, queue: ctx.queue, admin_token: ctx.token),
        else: Json.error(404, "no route")
    end)
  end

  defp no_local, do: fn -> flunk("must not start a local queue while a host answers") end

  test "a running host is used over HTTP: enqueue, get and follow", ctx do
    port = host(ctx)
    secret = ctx.secret

    assert {:ok, {:http, base, ^secret} = conn} =
             Client.connect(port: port, data_dir: ctx.data_dir, start_local: no_local())

    assert base == "http://127.0.0.1:#{port}"
    assert Client.describe(conn) =~ "the host at"

    assert {:ok, job} = Client.enqueue(conn, :evaluate, %{"x" => 1}, priority: 2)
    assert job["type"] == "evaluate"
    assert job["priority"] == 2

    test = self()
    assert {:ok, done} = Client.follow(conn, job["id"], &send(test, {:update, &1}), 10)
    assert done["state"] == "succeeded"
    assert done["result"] == %{"x" => 1}
    assert_received {:update, %{"state" => "succeeded"}}

    assert {:ok, %{"id" => id}} = Client.get(conn, job["id"])
    assert id == job["id"]
    assert {:error, message} = Client.get(conn, 999_999)
    assert message =~ "HTTP 404: no job 999999"
  end

  test "a wrong admin token gets a message saying where the token comes from", ctx do
    port = host(ctx)
    conn = {:http, "http://127.0.0.1:#{port}", "wrong"}
    assert {:error, message} = Client.enqueue(conn, :evaluate, %{}, [])
    assert message =~ "refused the admin token"
    assert message =~ "ADMIN_TOKEN"
  end

  test "a server that is not this host is reported, not used", ctx do
    port = HttpStub.start!(fn _request -> Json.error(404, "nothing here") end)

    assert {:error, message} =
             Client.connect(port: port, data_dir: ctx.data_dir, start_local: no_local())

    assert message =~ "answered GET /api/jobs with HTTP 404"
  end

  test "no host: the queue in this process is used (after start_local)", ctx do
    {:ok, closed} = :gen_tcp.listen(0, ip: {127, 0, 0, 1})
    {:ok, port} = :inet.port(closed)
    :gen_tcp.close(closed)
    test = self()

    assert {:ok, {:local, queue, events} = conn} =
             Client.connect(
               port: port,
               data_dir: ctx.data_dir,
               queue: ctx.queue,
               events: ctx.events,
               start_local: fn -> send(test, :started_local) && :ok end
             )

    assert_received :started_local
    assert {queue, events} == {ctx.queue, ctx.events}

    assert {:ok, job} = Client.enqueue(conn, :evaluate, %{"y" => 2}, priority: nil)

    assert {:ok, %{"state" => "succeeded", "result" => %{"y" => 2}}} =
             Client.follow(conn, job["id"], fn _ -> :ok end)

    assert {:error, "no job 999999"} = Client.get(conn, 999_999)
  end
end
