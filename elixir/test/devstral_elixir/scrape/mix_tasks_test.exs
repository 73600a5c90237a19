defmodule DevstralElixir.Scrape.MixTasksTest do
  # Sets HEX_API_URL / HEX_MIRROR / GITHUB_TOKEN, which are global.
  use ExUnit.Case, async: false

  import ExUnit.CaptureIO
  import DevstralElixir.Test.Jobs.QueueHelpers, only: [start_queue: 2]

  alias DevstralElixir.Jobs.{AdminToken, Queue}
  alias DevstralElixir.Scrape.Manifest
  alias DevstralElixir.Test.Jobs.HttpStub
  alias DevstralElixir.Web.JobsApi
  alias DevstralElixir.Test.Scrape.{FakeGitHub, FakeHex, HexFixtures, Tmp}

  @moduletag :capture_log

  setup do
    Mix.shell(Mix.Shell.Process)
    on_exit(fn -> Mix.shell(Mix.Shell.IO) end)

    # Log lines only, as on a non-terminal: no progress bar drawn over them.
    ansi = Application.get_env(:elixir, :ansi_enabled)
    Application.put_env(:elixir, :ansi_enabled, false)
    on_exit(fn -> Application.put_env(:elixir, :ansi_enabled, ansi) end)

    # No host answers on HTTP_PORT, so each task runs its job in this process,
    # on a queue in a data directory of its own.
    tmp = Tmp.dir!()
    :stopped = :mnesia.stop()
    put_env(%{"HTTP_PORT" => Integer.to_string(closed_port()), "DATA_DIR" => tmp})
    %{out: Path.join(tmp, "out"), data_dir: tmp}
  end

  test "bad flags are refused with the flag named" do
    for {task, args, message} <- [
          {Mix.Tasks.Scrape.Hex, ["--bogus"], "mix scrape.hex: unknown option --bogus"},
          {Mix.Tasks.Scrape.Hex, ["--limit", "many"],
           ~s(mix scrape.hex: invalid value "many" for --limit)},
          {Mix.Tasks.Scrape.Hex, ["--limit", "0"], "--limit must be a positive integer"},
          {Mix.Tasks.Scrape.Hex, ["--sort", "stars"], "--sort must be one of recent_downloads"},
          {Mix.Tasks.Scrape.Hex, ["--updated-since", "2024-13-01"],
           "--updated-since must be a date"},
          {Mix.Tasks.Scrape.Hex, ["extra"], "unexpected arguments extra"},
          {Mix.Tasks.Scrape.Github, ["--min-stars", "-1"], "--min-stars must not be negative"},
          {Mix.Tasks.Scrape.Github, ["--token", "x"], "unknown option --token"},
          {Mix.Tasks.Scrape.Local, [], "give at least one directory"},
          {Mix.Tasks.Scrape.Docs, ["--apps"], "mix scrape.docs: --apps needs a value"}
        ] do
      error = assert_raise Mix.Error, fn -> task.run(args) end
      assert error.message =~ message
    end
  end

  test "mix scrape.hex reads HEX_API_URL and HEX_MIRROR and prints progress and a summary", %{
    out: out
  } do
    fake =
      FakeHex.start([
        FakeHex.package("alpha", "1.0.0"),
        FakeHex.package("beta", "2.0.0", licenses: ["GPL-2.0"])
      ])

    put_env(%{"HEX_API_URL" => fake.api_url, "HEX_MIRROR" => fake.repo_url})

    output =
      capture_io(fn ->
        Mix.Tasks.Scrape.Hex.run(["--out", out, "--requests-per-minute", "60000"])
      end)

    assert output =~ ~r"^\[\d/2\] alpha 1\.0\.0 ok 6 files$"m

    assert output =~
             ~r"^\[\d/2\] beta 2\.0\.0 rejected license: licence GPL-2\.0 is not in the allowed list$"m

    assert output =~ "hex: fetched 1, skipped 0, rejected 1 (license 1)"
    assert length(Manifest.read_rows(Manifest.path(out))) == 1
  end

  test "mix scrape.hex fails clearly when the listing is unreachable", %{out: out} do
    fake = FakeHex.start([])
    FakeHex.script(fake, :listing, {:always, :html})

    error =
      assert_raise Mix.Error, fn ->
        capture_io(fn ->
          Mix.Tasks.Scrape.Hex.run([
            "--out",
            out,
            "--api-url",
            fake.api_url,
            "--requests-per-minute",
            "60000"
          ])
        end)
      end

    assert error.message =~ "nothing was scraped: listing page 1: bad_json"
  end

  test "mix scrape.github uses GITHUB_TOKEN", %{out: out} do
    fake = FakeGitHub.start([%{full_name: "acme/app", stars: 50}])
    put_env(%{"GITHUB_TOKEN" => "from-env"})

    output =
      capture_io(fn ->
        Mix.Tasks.Scrape.Github.run(
          ~w(--out #{out} --api-url #{fake.api_url} --hex-manifest #{out}/none.jsonl --searches-per-minute 60000 --requests-per-minute 60000)
        )
      end)

    assert output =~ ~r"^\[1/1\] acme/app [0-9a-f]{7} ok 6 files$"m

    assert Enum.all?(
             FakeGitHub.requests(fake),
             &(&1.path =~ "/codeload/" or &1.headers["authorization"] == "Bearer from-env")
           )
  end

  test "mix scrape.local and mix scrape.docs", %{out: out} do
    sample = Path.join(HexFixtures.fixtures(), "sample")
    output = capture_io(fn -> Mix.Tasks.Scrape.Local.run([sample, "--out", out]) end)
    assert output =~ ~r"^\[1/1\] sample [0-9a-f]{12} ok 6 files$"m
    assert output =~ "local: fetched 1"
    assert_received {:mix_shell, :info, ["enqueued scrape job " <> enqueued]}
    assert enqueued =~ "on a queue in this process (no host answered)"

    # The task's queue is gone with the task.
    assert GenServer.whereis(DevstralElixir.Jobs.Queue) == nil

    docs = Path.join(out, "docs")
    output = capture_io(fn -> Mix.Tasks.Scrape.Docs.run(["--apps", "eex", "--out", docs]) end)
    assert output =~ ~r"^\[1/1\] eex \S+ ok \d+ files$"m

    error =
      assert_raise Mix.Error, fn ->
        capture_io(fn -> Mix.Tasks.Scrape.Docs.run(["--apps", "eex,nope", "--out", docs]) end)
      end

    assert error.message =~ "mix scrape.docs: "
    assert error.message =~ "nope"
  end

  describe "with a host running" do
    setup %{data_dir: data_dir} do
      :stopped = :mnesia.stop()
      ctx = start_queue(data_dir, runners: %{scrape: DevstralElixir.Scrape.Runner})
      File.write!(AdminToken.file(data_dir), "host-token\n")
      token = :"mix_tasks_token_#{System.unique_integer([:positive])}"
      start_supervised!({AdminToken, name: token, token: "host-token", data_dir: nil})

      port =
        HttpStub.start!(fn request ->
          JobsApi.handle(request, queue: ctx.queue, admin_token: token)
        end)

      put_env(%{"HTTP_PORT" => Integer.to_string(port)})
      Map.put(ctx, :port, port)
    end

    test "mix scrape.local enqueues its job there and prints its summary", ctx do
      sample = Path.join(HexFixtures.fixtures(), "sample")

      output =
        capture_io(fn ->
          Mix.Tasks.Scrape.Local.run([sample, "--out", ctx.out, "--priority", "4"])
        end)

      assert_received {:mix_shell, :info, ["enqueued scrape job " <> enqueued]}
      assert enqueued =~ "on the host at http://127.0.0.1:#{ctx.port}"
      assert output =~ "local: fetched 1"

      assert [job] = Queue.list(ctx.queue)
      assert {job.type, job.state, job.priority} == {:scrape, :succeeded, 4}
      assert job.args["source"] == "local"
      assert job.args["paths"] == [sample]
      assert job.args["out"] == ctx.out
      assert length(Manifest.read_rows(Manifest.path(ctx.out))) == 1
    end

    test "--detach returns once the job is enqueued", ctx do
      sample = Path.join(HexFixtures.fixtures(), "sample")

      capture_io(fn ->
        assert Mix.Tasks.Scrape.Local.run([sample, "--out", ctx.out, "--detach"]) == nil
      end)

      assert_received {:mix_shell, :info, ["detached; follow it with GET /api/jobs/" <> _]}
      assert [%{type: :scrape}] = Queue.list(ctx.queue)
    end
  end

  defp closed_port do
    {:ok, socket} = :gen_tcp.listen(0, ip: {127, 0, 0, 1})
    {:ok, port} = :inet.port(socket)
    :gen_tcp.close(socket)
    port
  end

  defp put_env(vars) do
    previous = Map.new(vars, fn {k, _} -> {k, System.get_env(k)} end)
    System.put_env(vars)

    on_exit(fn ->
      Enum.each(previous, fn
        {k, nil} -> System.delete_env(k)
        {k, v} -> System.put_env(k, v)
      end)
    end)
  end
end
