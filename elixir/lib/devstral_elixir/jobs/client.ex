defmodule DevstralElixir.Jobs.Client do
  @moduledoc """
  How a tool (a Mix task) reaches the job queue: over the JSON API of a host
  already running on `127.0.0.1:HTTP_PORT`, or, when none answers, through a
  queue in this BEAM. Either way jobs come back in their JSON form
  (`DevstralElixir.Jobs.Job.to_json/1`), so callers need not care which.

  Only one BEAM may open a data directory's Mnesia; `connect/1` checks the
  lock before it starts anything locally, and says which process holds it.
  """

  alias DevstralElixir.Jobs.{AdminToken, Events, Job, Queue}
  alias DevstralElixir.Web.Json

  @type conn ::
          {:http, base_url :: String.t(), token :: String.t() | nil}
          | {:local, queue :: GenServer.server(), events :: atom()}

  @doc """
  Connects. Options: `:port` (the host's HTTP port), `:data_dir`, `:start_local`
  (a zero-arity function that starts the queue in this BEAM; it is only called
  when no host answers), `:queue` and `:events` (the local names).
  """
  @spec connect(keyword()) :: {:ok, conn()} | {:error, String.t()}
  def connect(opts) do
    opts = Keyword.validate!(opts, [:port, :data_dir, :start_local, queue: Queue, events: Events])

    base = "http://127.0.0.1:#{opts[:port]}"

    case http(:get, base <> "/api/jobs?limit=1", nil, nil) do
      {:ok, 200, _body} ->
        {:ok, {:http, base, AdminToken.for_client(opts[:data_dir])}}

      {:ok, status, _body} ->
        {:error,
         "the server on #{base} answered GET /api/jobs with HTTP #{status}; is it this project's host?"}

      {:error, :unreachable} ->
        connect_local(opts)

      {:error, message} ->
        {:error, message}
    end
  end

  @doc "A short description of the connection, for messages."
  @spec describe(conn()) :: String.t()
  def describe({:http, base, _token}), do: "the host at #{base}"
  def describe({:local, _queue, _events}), do: "a queue in this process (no host answered)"

  @doc "Enqueues a job; returns it as JSON."
  @spec enqueue(conn(), Job.type(), map(), keyword()) :: {:ok, map()} | {:error, String.t()}
  def enqueue({:http, base, token}, type, args, opts) do
    body = %{"type" => Atom.to_string(type), "args" => Job.json_safe(args)}
    body = if opts[:priority], do: Map.put(body, "priority", opts[:priority]), else: body

    case http(:post, base <> "/api/jobs", token, Json.encode(body)) do
      {:ok, 201, job} ->
        {:ok, job}

      {:ok, 401, _body} ->
        {:error, token_refused()}

      {:ok, status, body} ->
        {:error, "POST /api/jobs failed with HTTP #{status}: #{error_message(body)}"}

      {:error, reason} ->
        {:error, describe_error(reason)}
    end
  end

  def enqueue({:local, queue, _events}, type, args, opts) do
    opts = for {:priority, priority} <- opts, priority != nil, do: {:priority, priority}

    with {:ok, job} <- Queue.enqueue(queue, type, args, opts),
         do: {:ok, Job.to_json(job)}
  end

  @doc """
  Sends `method path` (with a JSON `body` for a POST) to the host of an
  `:http` connection, with its admin token, and waits up to `timeout` ms.
  Returns the decoded answer of a 2xx status, else `{:error, message}` with
  the host's own message and the status (and what to do about a refused
  token). The `mix rag.*` tasks call the memory API with it.
  """
  @spec request(conn(), :get | :post, String.t(), map() | nil, timeout()) ::
          {:ok, term()} | {:error, String.t()}
  def request({:http, base, token}, method, path, body, timeout \\ 10_000) do
    case http(method, base <> path, token, body && Json.encode(body), timeout) do
      {:ok, status, answer} when status in 200..299 ->
        {:ok, answer}

      {:ok, 401, _body} ->
        {:error, token_refused()}

      {:ok, status, answer} ->
        {:error,
         "#{String.upcase(to_string(method))} #{path} failed with HTTP #{status}: #{error_message(answer)}"}

      {:error, reason} ->
        {:error, describe_error(reason)}
    end
  end

  @doc "A job by id, as JSON."
  @spec get(conn(), Job.id()) :: {:ok, map()} | {:error, String.t()}
  def get({:http, base, _token}, id) do
    case http(:get, "#{base}/api/jobs/#{id}", nil, nil) do
      {:ok, 200, job} ->
        {:ok, job}

      {:ok, status, body} ->
        {:error, "GET /api/jobs/#{id} failed with HTTP #{status}: #{error_message(body)}"}

      {:error, reason} ->
        {:error, describe_error(reason)}
    end
  end

  def get({:local, queue, _events}, id) do
    case Queue.get(queue, id) do
      {:ok, job} -> {:ok, Job.to_json(job)}
      {:error, :not_found} -> {:error, "no job #{id}"}
    end
  end

  @doc """
  Calls `on_update` with the job (as JSON) whenever it changes, until it
  reaches a final state, and returns it then. Remote jobs are polled every
  `interval` ms; local ones are followed through `DevstralElixir.Jobs.Events`,
  where every progress event the runner reports is seen (as the job with
  that `"progress"`), not only the latest.
  """
  @spec follow(conn(), Job.id(), (map() -> any()), pos_integer()) ::
          {:ok, map()} | {:error, String.t()}
  def follow(conn, id, on_update, interval \\ 1_000) do
    case conn do
      {:local, _queue, events} ->
        # Subscribed before the first read, so no event falls between the two.
        Events.subscribe(id, events)

        try do
          with {:ok, job} <- get(conn, id), do: next(conn, id, on_update, interval, nil, job)
        after
          # The registry links its subscribers: unlinked, they outlive a local queue.
          Events.unsubscribe(id, events)
        end

      {:http, _base, _token} ->
        with {:ok, job} <- get(conn, id), do: next(conn, id, on_update, interval, nil, job)
    end
  end

  defp follow_loop({:http, _base, _token} = conn, id, on_update, interval, last) do
    Process.sleep(interval)

    with {:ok, job} <- get(conn, id), do: next(conn, id, on_update, interval, last, job)
  end

  defp follow_loop({:local, _queue, _events} = conn, id, on_update, interval, last) do
    receive do
      {Events, ^id, {:progress, progress}} ->
        job = Map.put(last, "progress", Job.json_safe(progress))
        on_update.(job)
        follow_loop(conn, id, on_update, interval, job)

      {Events, ^id, {:state, %Job{} = state}} ->
        # The stored progress may lag the events already shown; keep the newest.
        job = Map.put(Job.to_json(state), "progress", last["progress"])
        next(conn, id, on_update, interval, last, job)
    after
      # A safety net should an event be lost: look at the stored job.
      interval ->
        with {:ok, job} <- get(conn, id), do: next(conn, id, on_update, interval, last, job)
    end
  end

  defp next(conn, id, on_update, interval, last, job) do
    if job != last, do: on_update.(job)
    if final?(job), do: {:ok, job}, else: follow_loop(conn, id, on_update, interval, job)
  end

  defp final?(%{"state" => state}), do: state in ["succeeded", "failed", "cancelled"]

  defp connect_local(opts) do
    with :ok <- Queue.check_lock(opts[:data_dir]),
         :ok <- opts[:start_local].() do
      if GenServer.whereis(opts[:queue]),
        do: {:ok, {:local, opts[:queue], opts[:events]}},
        else: {:error, "the job queue did not start in this process"}
    end
  end

  # HTTP over OTP's :httpc: {:ok, status, decoded_body} | {:error, :unreachable | term}

  defp token_refused do
    "the host refused the admin token: set ADMIN_TOKEN to the host's token " <>
      "(it logs a generated one at start and writes it to DATA_DIR/admin_token)"
  end

  defp http(method, url, token, body, timeout \\ 10_000) do
    {:ok, _} = Application.ensure_all_started(:inets)

    headers =
      if token, do: [{~c"authorization", String.to_charlist("Bearer " <> token)}], else: []

    url = String.to_charlist(url)

    request =
      case method do
        :get -> {url, headers}
        :post -> {url, headers, ~c"application/json", body}
      end

    case :httpc.request(method, request, [timeout: timeout, connect_timeout: 1_000],
           body_format: :binary
         ) do
      {:ok, {{_version, status, _reason}, _headers, body}} ->
        {:ok, status, decode(body)}

      {:error, {:failed_connect, _}} ->
        {:error, :unreachable}

      {:error, reason} ->
        {:error, reason}
    end
  end

  defp decode(body) do
    case Json.decode(body) do
      {:ok, term} -> term
      {:error, _} -> body
    end
  end

  defp error_message(%{"error" => %{"message" => message}}), do: message
  defp error_message(body), do: inspect(body)

  defp describe_error(reason) when is_binary(reason), do: reason
  defp describe_error(reason), do: "HTTP request failed: #{inspect(reason)}"
end
