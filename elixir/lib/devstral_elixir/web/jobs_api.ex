defmodule DevstralElixir.Web.JobsApi do
  @moduledoc """
  The job queue's JSON API:

    * `GET /api/jobs` - `{"jobs": [job, ...]}`, newest first; query
      parameters `state`, `type` and `limit` (1..1000, default 100);
    * `GET /api/jobs/ID` - one job;
    * `POST /api/jobs` - body `{"type": ..., "args": {...}, "priority": 0..9,
      "max_attempts": n}` (`args`, `priority` and `max_attempts` optional);
      answers 201 with the job;
    * `POST /api/jobs/ID/cancel` - the cancelled job; 409 when it already ended.

  A job is the map of `DevstralElixir.Jobs.Job.to_json/1`: id, type, state,
  args, priority, attempts, max_attempts, resource, progress, error, result,
  parent_id and timestamps.

  The POSTs require the admin token (`authorization: Bearer <ADMIN_TOKEN>`,
  see `DevstralElixir.Jobs.AdminToken`), since a job runs code and writes
  files on the host. Errors use `DevstralElixir.Web.Json.error/3`; 503 while
  the queue is not running.
  """

  alias DevstralElixir.Jobs.{AdminToken, Job, Queue}
  alias DevstralElixir.Web.{AdminOnly, Json, Request}

  @post_fields ["type", "args", "priority", "max_attempts"]

  @doc """
  Handles a request under `/api/jobs`. Options (for tests): `:queue` (default
  `DevstralElixir.Jobs.Queue`) and `:admin_token` (the `AdminToken` server).
  """
  @spec handle(Request.t(), keyword()) :: Request.response()
  def handle(%Request{} = request, opts \\ []) do
    opts = Keyword.validate!(opts, queue: Queue, admin_token: AdminToken)
    route(request.method, request.path, request, opts)
  catch
    :exit, {reason, {GenServer, :call, _}} when reason in [:noproc, :shutdown, :normal] ->
      Json.error(503, "the job queue is not running", code: "queue_unavailable")

    :exit, {:timeout, {GenServer, :call, _}} ->
      Json.error(503, "the job queue did not answer in time", code: "queue_timeout")
  end

  defp route("GET", ["api", "jobs"], request, opts), do: index(request, opts)
  defp route("GET", ["api", "jobs", id], _request, opts), do: with_id(id, &show(&1, opts))

  defp route("POST", ["api", "jobs"], request, opts),
    do: AdminOnly.run(request, opts, fn -> create(request, opts) end)

  defp route("POST", ["api", "jobs", id, "cancel"], request, opts),
    do: AdminOnly.run(request, opts, fn -> with_id(id, &cancel(&1, opts)) end)

  defp route(method, ["api", "jobs"], _request, _opts), do: not_allowed(method, "GET, POST")
  defp route(method, ["api", "jobs", _id], _request, _opts), do: not_allowed(method, "GET")

  defp route(method, ["api", "jobs", _id, "cancel"], _request, _opts),
    do: not_allowed(method, "POST")

  defp route(method, path, _request, _opts) do
    Json.error(404, "no route for #{method} /#{Enum.join(path, "/")}", code: "not_found")
  end

  defp index(request, opts) do
    with {:ok, state} <- query_enum(request, "state", &Job.parse_state/1, Job.states()),
         {:ok, type} <- query_enum(request, "type", &Job.parse_type/1, Job.types()),
         {:ok, limit} <- query_limit(request) do
      jobs = Queue.list(opts[:queue], state: state, type: type, limit: limit)
      Json.respond(200, %{"jobs" => Enum.map(jobs, &Job.to_json/1)})
    end
  end

  defp show(id, opts) do
    case Queue.get(opts[:queue], id) do
      {:ok, job} -> Json.respond(200, Job.to_json(job))
      {:error, :not_found} -> not_found(id)
    end
  end

  defp create(request, opts) do
    with {:ok, body} <- decode_object(request.body),
         :ok <- known_fields(body),
         {:ok, type} <- required_string(body, "type"),
         {:ok, args} <- optional(body, "args", %{}, &is_map/1, "an object"),
         {:ok, enqueue_opts} <- enqueue_opts(body) do
      case Queue.enqueue(opts[:queue], type, args, enqueue_opts) do
        {:ok, job} ->
          {status, headers, body} = Json.respond(201, Job.to_json(job))
          {status, [{"location", "/api/jobs/#{job.id}"} | headers], body}

        {:error, message} ->
          Json.error(400, message, code: "invalid_job")
      end
    end
  end

  defp cancel(id, opts) do
    case Queue.cancel(opts[:queue], id) do
      {:ok, job} ->
        Json.respond(200, Job.to_json(job))

      {:error, :not_found} ->
        not_found(id)

      {:error, {:final, state}} ->
        Json.error(
          409,
          "job #{id} already #{state}; only queued or running jobs can be cancelled",
          type: "conflict_error",
          code: "job_finished"
        )
    end
  end

  # Request checks

  defp with_id(text, fun) do
    case Integer.parse(text) do
      {id, ""} when id > 0 -> fun.(id)
      _ -> not_found(text)
    end
  end

  defp decode_object(body) do
    case Json.decode(body) do
      {:ok, map} when is_map(map) -> {:ok, map}
      {:ok, _other} -> bad_request("the body must be a JSON object", nil)
      {:error, message} -> bad_request(message, nil)
    end
  end

  defp known_fields(body) do
    case Map.keys(body) -- @post_fields do
      [] ->
        :ok

      [field | _] ->
        bad_request(
          "unknown field #{inspect(field)}; known: #{Enum.join(@post_fields, ", ")}",
          field
        )
    end
  end

  defp required_string(body, field) do
    case Map.get(body, field) do
      value when is_binary(value) and value != "" -> {:ok, value}
      nil -> bad_request("#{field} is required", field)
      value -> bad_request("#{field} must be a string, got #{Json.encode(value)}", field)
    end
  end

  defp optional(body, field, default, valid?, what) do
    case Map.fetch(body, field) do
      :error ->
        {:ok, default}

      {:ok, nil} ->
        {:ok, default}

      {:ok, value} ->
        if valid?.(value),
          do: {:ok, value},
          else: bad_request("#{field} must be #{what}, got #{Json.encode(value)}", field)
    end
  end

  defp enqueue_opts(body) do
    with {:ok, priority} <-
           optional(body, "priority", 0, &(&1 in 0..9), "an integer from 0 to 9"),
         {:ok, max_attempts} <-
           optional(body, "max_attempts", nil, &(is_integer(&1) and &1 > 0), "a positive integer") do
      opts = [priority: priority]
      {:ok, if(max_attempts, do: [{:max_attempts, max_attempts} | opts], else: opts)}
    end
  end

  defp query_enum(request, name, parse, allowed) do
    case Map.get(request.query, name) do
      nil ->
        {:ok, nil}

      value ->
        case parse.(value) do
          {:ok, parsed} ->
            {:ok, parsed}

          :error ->
            bad_request(
              "#{name} must be one of #{Enum.join(allowed, ", ")}, got #{inspect(value)}",
              name
            )
        end
    end
  end

  defp query_limit(request) do
    case Map.get(request.query, "limit") do
      nil ->
        {:ok, 100}

      value ->
        case Integer.parse(value) do
          {n, ""} when n in 1..1000 ->
            {:ok, n}

          _ ->
            bad_request("limit must be an integer from 1 to 1000, got #{inspect(value)}", "limit")
        end
    end
  end

  defp bad_request(message, param), do: Json.error(400, message, param: param)

  defp not_found(id), do: Json.error(404, "no job #{id}", code: "job_not_found")

  defp not_allowed(method, allow) do
    {status, headers, body} =
      Json.error(405, "#{method} is not allowed here; allowed: #{allow}",
        type: "invalid_request_error"
      )

    {status, [{"allow", allow} | headers], body}
  end
end
