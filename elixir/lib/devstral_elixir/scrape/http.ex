defmodule DevstralElixir.Scrape.Http do
  @moduledoc """
  A polite HTTP client for the scrapers, on `:httpc`.

    * Sends a `User-Agent` on every request (Hex answers 400 without one).
    * Verifies TLS peers against the system CA store
      (`:public_key.cacerts_get/0`) with the HTTPS hostname check.
    * Spaces requests through an optional `DevstralElixir.Scrape.Limiter` and
      pauses it when `x-ratelimit-remaining` reaches 0, until
      `x-ratelimit-reset`.
    * On 429 (or 403 with the rate limit spent) waits until the reset time
      (or `retry-after`) and retries.
    * Retries 5xx answers, timeouts and dropped connections with exponential
      backoff and jitter, then gives up with a reason.
    * Follows redirects itself, dropping `Authorization` when the host
      changes.
    * With `cache: true`, sends `If-None-Match` from a `DevstralElixir.Scrape.EtagCache`.
    * `download/4` streams a body to a file, with a size cap and SHA-256.

  Errors are `{reason, detail}`, where `reason` is an atom such as
  `:http_error`, `:server_error`, `:network_error`, `:rate_limited`,
  `:bad_json`, `:bad_url`, `:tls_error`, `:too_large` or `:download_failed`, and `detail`
  names the URL.
  Sleeping and the clock are injectable (`sleep`, `now_ms`) so tests can check
  the waits without waiting.
  """

  require Logger

  alias DevstralElixir.Scrape.{EtagCache, Json, Limiter}

  @user_agent "devstral_elixir-scraper/0.1 (+https://github.com/devstral-elixir; Elixir #{System.version()})"

  defstruct user_agent: @user_agent,
            headers: [],
            limiter: nil,
            cache_dir: nil,
            sleep: &Process.sleep/1,
            now_ms: &__MODULE__.system_now_ms/0,
            max_retries: 4,
            backoff_base_ms: 500,
            backoff_max_ms: 30_000,
            timeout_ms: 60_000,
            connect_timeout_ms: 15_000,
            max_rate_limit_waits: 5,
            max_wait_ms: 15 * 60_000,
            max_redirects: 5

  @type t :: %__MODULE__{
          user_agent: String.t(),
          headers: [{String.t(), String.t()}],
          limiter: GenServer.server() | nil,
          cache_dir: Path.t() | nil,
          sleep: (non_neg_integer() -> any()),
          now_ms: (() -> integer()),
          max_retries: non_neg_integer(),
          backoff_base_ms: non_neg_integer(),
          backoff_max_ms: non_neg_integer(),
          timeout_ms: pos_integer(),
          connect_timeout_ms: pos_integer(),
          max_rate_limit_waits: non_neg_integer(),
          max_wait_ms: non_neg_integer(),
          max_redirects: non_neg_integer()
        }

  @type response :: %{
          status: non_neg_integer(),
          headers: %{String.t() => String.t()},
          body: binary(),
          url: String.t()
        }

  @type error :: {atom(), String.t()}

  @doc """
  A client. Options are the struct's fields: `user_agent`, `headers` (sent on
  every request to the first host), `limiter`, `cache_dir`, `sleep`, `now_ms`,
  `max_retries`, `backoff_base_ms`, `backoff_max_ms`, `timeout_ms`,
  `connect_timeout_ms`, `max_rate_limit_waits`, `max_wait_ms`, `max_redirects`.
  """
  @spec new(keyword()) :: t()
  def new(opts \\ []) do
    fields = Map.keys(%__MODULE__{}) -- [:__struct__]
    struct!(__MODULE__, Keyword.validate!(opts, fields))
  end

  @doc false
  @spec system_now_ms() :: integer()
  def system_now_ms, do: System.os_time(:millisecond)

  @doc """
  `GET url`, retried and rate-limited as described above; any 2xx answer is
  `{:ok, response}`. Options: `cache: true` uses the ETag cache (a 304 gives
  the stored body with status 200), `headers: [...]` adds request headers.
  """
  @spec get(t(), String.t(), keyword()) :: {:ok, response()} | {:error, error()}
  def get(%__MODULE__{} = http, url, opts \\ []) do
    cached = if opts[:cache] && http.cache_dir, do: EtagCache.lookup(http.cache_dir, url)
    extra = Keyword.get(opts, :headers, [])
    extra = if cached, do: [{"if-none-match", elem(cached, 0)} | extra], else: extra

    case request(http, url, extra, :buffer) do
      {:ok, %{status: 304} = response} when cached != nil ->
        {:ok, %{response | status: 200, body: elem(cached, 1)}}

      {:ok, %{status: 304}} ->
        {:error, {:http_error, "GET #{url}: 304 Not Modified without a cached copy"}}

      {:ok, response} ->
        if opts[:cache] && http.cache_dir && response.headers["etag"],
          do: EtagCache.store(http.cache_dir, url, response.headers["etag"], response.body)

        {:ok, response}

      error ->
        error
    end
  end

  @doc """
  `GET url` and decode a JSON body. An answer that is not JSON (say an HTML
  error page) is `{:error, {:bad_json, detail}}`. Takes `get/3`'s options.
  """
  @spec get_json(t(), String.t(), keyword()) :: {:ok, term()} | {:error, error()}
  def get_json(http, url, opts \\ []) do
    accept? = Enum.any?(http.headers, fn {name, _} -> String.downcase(name) == "accept" end)
    extra = Keyword.get(opts, :headers, [])
    headers = if accept?, do: extra, else: [{"accept", "application/json"} | extra]

    with {:ok, response} <- get(http, url, Keyword.put(opts, :headers, headers)) do
      type = Map.get(response.headers, "content-type", "")

      cond do
        type != "" and not String.contains?(type, "json") ->
          {:error, {:bad_json, "GET #{url}: expected JSON, got content-type #{type}"}}

        true ->
          case Json.decode(response.body) do
            {:ok, term} -> {:ok, term}
            {:error, detail} -> {:error, {:bad_json, "GET #{url}: #{detail}"}}
          end
      end
    end
  end

  @doc """
  Streams `GET url` into the file `path` (replaced on each attempt) and
  returns its size and SHA-256 (lower-case hex). Options: `max_bytes`
  (default 256 MiB; a larger body is `{:too_large, detail}`), `headers`.
  A connection that closes early is retried, then
  `{:download_failed, detail}`.
  """
  @spec download(t(), String.t(), Path.t(), keyword()) ::
          {:ok, %{bytes: non_neg_integer(), sha256: String.t(), url: String.t()}}
          | {:error, error()}
  def download(%__MODULE__{} = http, url, path, opts \\ []) do
    max_bytes = Keyword.get(opts, :max_bytes, 256 * 1024 * 1024)
    extra = Keyword.get(opts, :headers, [])

    case request(http, url, extra, {:file, path, max_bytes}) do
      {:ok, %{status: status} = response} when status in 200..299 ->
        {:ok, Map.take(response, [:bytes, :sha256, :url])}

      {:ok, response} ->
        {:error, {:http_error, "GET #{url}: unexpected status #{response.status}"}}

      error ->
        error
    end
  end

  ## The retry loop

  defp request(http, url, extra, mode) do
    attempt(http, url, base_headers(http) ++ extra, mode, %{tries: 0, waits: 0, hops: 0})
  end

  defp base_headers(http), do: [{"user-agent", http.user_agent} | http.headers]

  defp attempt(http, url, headers, mode, count) do
    wait_for_slot(http)
    result = send_request(http, url, headers, mode)
    note_rate_limit(http, result)

    case classify(result, url) do
      :ok ->
        {:ok, elem(result, 1)}

      :redirect ->
        redirect(http, url, headers, mode, count, elem(result, 1))

      :rate_limited ->
        rate_limited(http, url, headers, mode, count, elem(result, 1))

      {:retry, why} ->
        retry(http, url, headers, mode, count, why)

      {:fail, error} ->
        {:error, error}
    end
  end

  defp classify({:ok, %{status: status}}, _url) when status in 200..299 or status == 304, do: :ok

  defp classify({:ok, %{status: status}}, _url) when status in [301, 302, 303, 307, 308],
    do: :redirect

  defp classify({:ok, %{status: 429}}, _url), do: :rate_limited

  defp classify({:ok, %{status: 403, headers: %{"x-ratelimit-remaining" => "0"}}}, _url),
    do: :rate_limited

  defp classify({:ok, %{status: 403, headers: %{"retry-after" => _}}}, _url), do: :rate_limited

  defp classify({:ok, %{status: status}}, _url) when status >= 500,
    do: {:retry, "status #{status}"}

  defp classify({:ok, %{status: status, url: url}}, _url),
    do: {:fail, {:http_error, "GET #{url}: status #{status}"}}

  defp classify({:error, {:too_large, _} = error}, _url), do: {:fail, error}
  defp classify({:error, {:bad_url, _} = error}, _url), do: {:fail, error}
  defp classify({:error, {:local, detail}}, _url), do: {:fail, {:download_failed, detail}}
  # A certificate that does not verify will not verify on a retry either.
  defp classify({:error, {:failed_connect, info} = reason}, url) when is_list(info) do
    case List.last(info) do
      {_, _, {:tls_alert, _}} -> {:fail, {:tls_error, "GET #{url}: #{describe(reason)}"}}
      _ -> {:retry, describe(reason)}
    end
  end

  defp classify({:error, reason}, _url), do: {:retry, describe(reason)}

  defp retry(http, url, headers, mode, count, why) do
    if count.tries < http.max_retries do
      delay = backoff(http, count.tries)

      Logger.info(
        "GET #{url}: #{why}; retry #{count.tries + 1}/#{http.max_retries} in #{delay} ms"
      )

      pause(http, delay)
      attempt(http, url, headers, mode, %{count | tries: count.tries + 1})
    else
      reason =
        cond do
          String.starts_with?(why, "status ") -> :server_error
          match?({:file, _, _}, mode) -> :download_failed
          true -> :network_error
        end

      {:error, {reason, "GET #{url}: #{why} (gave up after #{count.tries + 1} attempts)"}}
    end
  end

  defp rate_limited(http, url, headers, mode, count, response) do
    wait = reset_wait(http, response.headers) || backoff(http, count.waits)

    cond do
      count.waits >= http.max_rate_limit_waits ->
        {:error,
         {:rate_limited,
          "GET #{url}: still rate limited (status #{response.status}) after #{count.waits} waits"}}

      wait > http.max_wait_ms ->
        {:error,
         {:rate_limited,
          "GET #{url}: rate limited for #{div(wait, 1000)} s, over the #{div(http.max_wait_ms, 1000)} s limit"}}

      true ->
        Logger.warning("GET #{url}: rate limited (status #{response.status}); waiting #{wait} ms")
        if http.limiter, do: Limiter.pause_for(http.limiter, wait)
        pause(http, wait)
        attempt(http, url, headers, mode, %{count | waits: count.waits + 1})
    end
  end

  defp redirect(http, url, headers, mode, count, response) do
    location = response.headers["location"]

    cond do
      location in [nil, ""] ->
        {:error, {:http_error, "GET #{url}: redirect #{response.status} without a location"}}

      count.hops >= http.max_redirects ->
        {:error, {:http_error, "GET #{url}: more than #{http.max_redirects} redirects"}}

      true ->
        target = url |> URI.merge(location) |> URI.to_string()

        headers =
          if URI.parse(target).host == URI.parse(url).host,
            do: headers,
            else:
              Enum.reject(headers, fn {name, _} -> String.downcase(name) == "authorization" end)

        attempt(http, target, headers, mode, %{count | hops: count.hops + 1})
    end
  end

  # Waits from `x-ratelimit-reset` (epoch seconds) or `retry-after` (seconds).
  defp reset_wait(http, headers) do
    cond do
      reset = int_header(headers, "x-ratelimit-reset") ->
        max(reset * 1000 - http.now_ms.(), 0) + 250

      after_s = int_header(headers, "retry-after") ->
        after_s * 1000

      true ->
        nil
    end
  end

  defp note_rate_limit(%{limiter: nil}, _result), do: :ok

  defp note_rate_limit(http, {:ok, %{headers: %{"x-ratelimit-remaining" => "0"} = headers}}) do
    case reset_wait(http, headers) do
      nil -> :ok
      wait -> Limiter.pause_for(http.limiter, min(wait, http.max_wait_ms))
    end
  end

  defp note_rate_limit(_http, _result), do: :ok

  defp int_header(headers, name) do
    with value when is_binary(value) <- headers[name],
         {int, _} <- Integer.parse(String.trim(value)) do
      int
    else
      _ -> nil
    end
  end

  defp wait_for_slot(%{limiter: nil}), do: :ok
  defp wait_for_slot(http), do: pause(http, Limiter.reserve(http.limiter))

  defp pause(_http, 0), do: :ok
  defp pause(http, ms), do: http.sleep.(ms)

  # Exponential backoff with "equal jitter": half fixed, half random.
  defp backoff(http, tries) do
    full = min(http.backoff_max_ms, http.backoff_base_ms * Integer.pow(2, tries))
    half = div(full, 2)
    half + :rand.uniform(half + 1) - 1
  end

  defp describe(:timeout), do: "timed out"

  defp describe({:failed_connect, info}) when is_list(info) do
    case List.last(info) do
      {_, _, reason} -> "could not connect (#{inspect(reason)})"
      _ -> "could not connect"
    end
  end

  defp describe({:failed_connect, _}), do: "could not connect"
  defp describe({:shutdown, :server_closed}), do: "connection closed by the server"
  defp describe(:socket_closed_remotely), do: "connection closed by the server"

  defp describe({:truncated, got, expected}),
    do: "connection dropped after #{got} of #{expected} bytes"

  defp describe(:idle_timeout), do: "no data received for too long"
  defp describe(other), do: inspect(other)

  ## One request through :httpc

  defp send_request(http, url, headers, mode) do
    with {:ok, request} <- httpc_request(url, headers) do
      options = [
        timeout: if(mode == :buffer, do: http.timeout_ms, else: :infinity),
        connect_timeout: http.connect_timeout_ms,
        autoredirect: false
      ]

      options =
        if String.starts_with?(url, "https:"),
          do: [{:ssl, ssl_options()} | options],
          else: options

      case mode do
        :buffer -> buffered(request, options, url)
        {:file, path, max_bytes} -> streamed(http, request, options, url, path, max_bytes)
      end
    end
  end

  defp httpc_request(url, headers) do
    case URI.parse(url) do
      %URI{scheme: scheme, host: host} when scheme in ["http", "https"] and is_binary(host) ->
        {:ok,
         {String.to_charlist(url),
          Enum.map(headers, fn {k, v} -> {String.to_charlist(k), String.to_charlist(v)} end)}}

      _ ->
        {:error, {:bad_url, "not an http(s) URL: #{inspect(url)}"}}
    end
  end

  @doc "TLS options: peer verification against the system CA store, with the HTTPS hostname check."
  @spec ssl_options() :: keyword()
  def ssl_options do
    [
      verify: :verify_peer,
      cacerts: :public_key.cacerts_get(),
      customize_hostname_check: [match_fun: :public_key.pkix_verify_hostname_match_fun(:https)]
    ]
  end

  defp buffered(request, options, url) do
    case :httpc.request(:get, request, options, body_format: :binary) do
      {:ok, {{_, status, _}, headers, body}} ->
        {:ok, %{status: status, headers: header_map(headers), body: body, url: url}}

      {:error, reason} ->
        {:error, reason}
    end
  end

  defp streamed(http, request, options, url, path, max_bytes) do
    File.mkdir_p!(Path.dirname(path))

    case File.open(path, [:write, :binary, :raw]) do
      {:ok, file} ->
        try do
          opts = [sync: false, stream: {:self, :once}, body_format: :binary]

          case :httpc.request(:get, request, options, opts) do
            {:ok, ref} -> receive_stream(http, ref, file, url, max_bytes)
            {:error, reason} -> {:error, reason}
          end
        after
          File.close(file)
        end

      {:error, reason} ->
        {:error, {:local, "cannot write #{path}: #{:file.format_error(reason)}"}}
    end
  end

  defp receive_stream(http, ref, file, url, max_bytes) do
    receive do
      {:http, {^ref, :stream_start, headers, pid}} ->
        headers = header_map(headers)
        expected = int_header(headers, "content-length")

        cond do
          expected && expected > max_bytes ->
            cancel(ref)

            {:error,
             {:too_large, "GET #{url}: #{expected} bytes, over the #{max_bytes}-byte cap"}}

          true ->
            :httpc.stream_next(pid)
            state = %{pid: pid, bytes: 0, hash: :crypto.hash_init(:sha256), expected: expected}
            stream_body(http, ref, file, url, max_bytes, headers, state)
        end

      {:http, {^ref, {{_, status, _}, headers, body}}} ->
        {:ok, %{status: status, headers: header_map(headers), body: body, url: url}}

      {:http, {^ref, {:error, reason}}} ->
        {:error, reason}
    after
      http.timeout_ms ->
        cancel(ref)
        {:error, :timeout}
    end
  end

  defp stream_body(http, ref, file, url, max_bytes, headers, state) do
    receive do
      {:http, {^ref, :stream, chunk}} ->
        bytes = state.bytes + byte_size(chunk)

        if bytes > max_bytes do
          cancel(ref)
          {:error, {:too_large, "GET #{url}: body over the #{max_bytes}-byte cap"}}
        else
          :ok = :file.write(file, chunk)
          :httpc.stream_next(state.pid)
          state = %{state | bytes: bytes, hash: :crypto.hash_update(state.hash, chunk)}
          stream_body(http, ref, file, url, max_bytes, headers, state)
        end

      {:http, {^ref, :stream_end, _trailers}} ->
        if state.expected && state.expected != state.bytes do
          {:error, {:truncated, state.bytes, state.expected}}
        else
          sha = Base.encode16(:crypto.hash_final(state.hash), case: :lower)

          {:ok,
           %{status: 200, headers: headers, body: "", url: url, bytes: state.bytes, sha256: sha}}
        end

      {:http, {^ref, {:error, _reason}}} when state.expected != nil ->
        {:error, {:truncated, state.bytes, state.expected}}

      {:http, {^ref, {:error, reason}}} ->
        {:error, reason}
    after
      http.timeout_ms ->
        cancel(ref)
        {:error, :idle_timeout}
    end
  end

  # Drops whatever httpc had already sent for a cancelled request.
  defp cancel(ref) do
    :httpc.cancel_request(ref)
    flush(ref)
  end

  defp flush(ref) do
    receive do
      {:http, {^ref, _}} -> flush(ref)
      {:http, {^ref, _, _}} -> flush(ref)
      {:http, {^ref, _, _, _}} -> flush(ref)
    after
      0 -> :ok
    end
  end

  defp header_map(headers) do
    Map.new(headers, fn {k, v} -> {String.downcase(to_string(k)), to_string(v)} end)
  end
end
