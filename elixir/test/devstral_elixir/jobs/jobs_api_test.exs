defmodule DevstralElixir.Web.JobsApiTest do
  use ExUnit.Case, async: false

  import DevstralElixir.Test.Jobs.QueueHelpers

  alias DevstralElixir.Jobs.{AdminToken, Events, Queue}
  alias DevstralElixir.Web.{JobsApi, Json, Request}

  @token "test-admin-token"

  setup do
    ctx = start_queue(tmp_dir("api"), runners: %{curriculum: DevstralElixir.Curriculum.Runner})
    token = :"jobs_api_token_#{System.unique_integer([:positive])}"
    start_supervised!({AdminToken, name: token, token: @token, data_dir: nil})
    Events.subscribe(:all, ctx.events)
    Map.put(ctx, :token, token)
  end

  defp call(ctx, method, path, opts \\ []) do
    headers =
      case Keyword.get(opts, :token, @token) do
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

    {status, resp_headers, body} =
      JobsApi.handle(request, queue: ctx.queue, admin_token: ctx.token)

    assert {"content-type", "application/json"} in resp_headers
    {:ok, json} = Json.decode(IO.iodata_to_binary(body))
    {status, Map.new(resp_headers), json}
  end

  defp scheduled_job(ctx) do
    later = DateTime.add(DateTime.utc_now(), 3600, :second)

    {:ok, job} =
      Queue.enqueue(ctx.queue, :scrape, %{test: self(), mode: :succeed}, scheduled_at: later)

    job
  end

  test "POSTs need the admin token: 401 without it or with a wrong one", ctx do
    body = Json.encode(%{"type" => "scrape", "args" => %{}})

    for token <- [nil, "wrong", ""] do
      {status, _headers, json} = call(ctx, "POST", "/api/jobs", token: token, body: body)
      assert status == 401
      assert json["error"]["type"] == "authentication_error"
      assert json["error"]["message"] =~ "admin token"
    end

    job = scheduled_job(ctx)
    assert {401, _, _} = call(ctx, "POST", "/api/jobs/#{job.id}/cancel", token: nil)
    assert {:ok, %{state: :queued}} = Queue.get(ctx.queue, job.id)
  end

  test "POST /api/jobs creates a job: 201 with the job's JSON", ctx do
    # Over HTTP the args are JSON; the scripted runner would reject them, so
    # use the real curriculum runner with a config that does not exist.
    body = Json.encode(%{"type" => "curriculum", "args" => %{"config" => "/nonexistent.exs"}})
    {status, _headers, json} = call(ctx, "POST", "/api/jobs", body: body)
    assert status == 400
    assert json["error"]["message"] =~ "no such curriculum config file"

    config = Path.join(ctx.data_dir, "c.exs")

    write_config = fn stage ->
      File.write!(config, """
      [
        base_model: "m",
        dataset_dir: #{inspect(Path.join(ctx.data_dir, "dataset"))},
        adapters_dir: #{inspect(Path.join(ctx.data_dir, "adapters"))},
        stages: [#{stage}]
      ]
      """)
    end

    # A gate that can never pass is refused at once, although this test has
    # no worker to ask about the rest of the plan; the answer says both.
    write_config.("[epochs: 1, gate: [min_elixir_improvement_pct: 150.0]]")
    doomed = %{"type" => "curriculum", "args" => %{"config" => config}}
    {status, _headers, json} = call(ctx, "POST", "/api/jobs", body: Json.encode(doomed))
    assert status == 400
    assert json["error"]["message"] =~ "stages[1].gate.min_elixir_improvement_pct is 150.0"
    assert json["error"]["message"] =~ "the worker could not check the plan"

    write_config.("[epochs: 1, learning_rate: 1.0e-4]")

    later = %{
      "type" => "curriculum",
      "args" => %{"config" => config, "run" => "api-run"},
      "priority" => 3
    }

    {status, headers, job} = call(ctx, "POST", "/api/jobs", body: Json.encode(later))

    assert status == 201
    assert headers["location"] == "/api/jobs/#{job["id"]}"
    assert job["type"] == "curriculum"
    assert job["priority"] == 3
    assert job["args"] == %{"config" => config, "run" => "api-run"}
    assert job["resource"] == "worker:default"
    assert job["max_attempts"] == 3

    for key <- ~w(id state attempts progress error result inserted_at updated_at scheduled_at),
        do: assert(Map.has_key?(job, key), "missing #{key}")

    # The job runs; with no worker to check the plan, each attempt fails with
    # that reason (a worker that comes back would let a retry succeed).
    failed = assert_state(job["id"], :failed)
    assert failed.attempts == 3
    assert failed.error =~ "the worker could not check the plan"

    {200, _, shown} = call(ctx, "GET", "/api/jobs/#{job["id"]}", token: nil)
    assert shown["state"] == "failed"
    assert shown["error"] == failed.error
  end

  test "POST /api/jobs rejects bad bodies with 400 naming the problem", ctx do
    cases = [
      {"not json", "invalid JSON"},
      {"[1]", "must be a JSON object"},
      {~s({"args": {}}), "type is required"},
      {~s({"type": 1}), "type must be a string"},
      {~s({"type": "mine"}), "type must be one of"},
      {~s({"type": "scrape", "args": []}), "args must be an object"},
      {~s({"type": "scrape", "priority": 12}), "priority must be an integer from 0 to 9"},
      {~s({"type": "scrape", "max_attempts": 0}), "max_attempts must be a positive integer"},
      {~s({"type": "scrape", "extra": 1}), ~s(unknown field "extra")}
    ]

    for {body, expected} <- cases do
      {status, _headers, json} = call(ctx, "POST", "/api/jobs", body: body)
      assert status == 400, "#{body} gave #{status}"
      assert json["error"]["message"] =~ expected, "#{body}: #{json["error"]["message"]}"
    end
  end

  test "GET /api/jobs lists jobs, with filters; GET /api/jobs/ID shows one", ctx do
    a = scheduled_job(ctx)
    b = scheduled_job(ctx)

    {200, _, %{"jobs" => jobs}} = call(ctx, "GET", "/api/jobs", token: nil)
    assert Enum.map(jobs, & &1["id"]) == [b.id, a.id]
    # Args that JSON cannot hold (a pid) are shown inspected, never crash the API.
    assert hd(jobs)["args"]["test"] =~ "#PID<"

    {200, _, %{"jobs" => [one]}} = call(ctx, "GET", "/api/jobs", query: %{"limit" => "1"})
    assert one["id"] == b.id

    {200, _, %{"jobs" => []}} = call(ctx, "GET", "/api/jobs", query: %{"state" => "running"})
    {200, _, %{"jobs" => [_, _]}} = call(ctx, "GET", "/api/jobs", query: %{"type" => "scrape"})
    {400, _, json} = call(ctx, "GET", "/api/jobs", query: %{"state" => "sleeping"})
    assert json["error"]["param"] == "state"
    {400, _, _} = call(ctx, "GET", "/api/jobs", query: %{"limit" => "0"})

    {200, _, job} = call(ctx, "GET", "/api/jobs/#{a.id}", token: nil)
    assert job["id"] == a.id
    assert job["state"] == "queued"
    assert job["attempts"] == 0
    assert job["progress"] == nil
    assert job["error"] == nil

    {404, _, json} = call(ctx, "GET", "/api/jobs/999999")
    assert json["error"]["code"] == "job_not_found"
    {404, _, _} = call(ctx, "GET", "/api/jobs/abc")
  end

  test "POST /api/jobs/ID/cancel cancels; 409 once it has ended; 404 for unknown", ctx do
    job = scheduled_job(ctx)

    {200, _, json} = call(ctx, "POST", "/api/jobs/#{job.id}/cancel")
    assert json["state"] == "cancelled"

    {409, _, json} = call(ctx, "POST", "/api/jobs/#{job.id}/cancel")
    assert json["error"]["message"] =~ "already cancelled"

    {404, _, _} = call(ctx, "POST", "/api/jobs/424242/cancel")
  end

  test "wrong methods get 405 with allow; other paths 404", ctx do
    {405, headers, _} = call(ctx, "DELETE", "/api/jobs")
    assert headers["allow"] == "GET, POST"
    {405, _, _} = call(ctx, "PUT", "/api/jobs/1")
    {405, _, _} = call(ctx, "GET", "/api/jobs/1/cancel")
    {404, _, _} = call(ctx, "GET", "/api/jobs/1/other")
  end

  test "503 when the queue is not running", ctx do
    request = %Request{method: "GET", path: ["api", "jobs"]}
    {503, _, body} = JobsApi.handle(request, queue: :no_such_queue, admin_token: ctx.token)
    assert {:ok, %{"error" => %{"message" => "the job queue is not running"}}} = Json.decode(body)
  end
end
