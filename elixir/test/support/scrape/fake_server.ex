defmodule DevstralElixir.Test.Scrape.FakeServer do
  @moduledoc """
  A small real HTTP/1.1 server on 127.0.0.1 for the scraper tests, on
  `:gen_tcp`: it parses request lines and headers and writes real responses
  (status line, headers, `Content-Length`), one request per connection.

  A handler `fun(request) -> response` answers each request, where `request`
  is `%{method, path, target, query, headers}` (`path` decoded, `target`
  as sent, header names lower-case) and `response`
  is one of:
    * `{status, headers, body}`;
    * `{:drop, status, headers, body, sent}`: announces the whole body but
      sends only its first `sent` bytes, then closes the connection;
    * `:hang`: answers nothing until the client gives up.

  Every request is recorded; `requests/1` returns them in arrival order.
  Start it with `start_supervised!({FakeServer, handler})` so it stops (with
  its connections) at the end of the test.
  """

  use GenServer, restart: :temporary

  @type request :: %{
          method: String.t(),
          path: String.t(),
          target: String.t(),
          query: %{String.t() => String.t()},
          headers: %{String.t() => String.t()}
        }

  @doc "A child spec with a fresh id, so one test can start several servers."
  @spec child_spec((request() -> term())) :: Supervisor.child_spec()
  def child_spec(handler) do
    %{id: {__MODULE__, make_ref()}, start: {__MODULE__, :start_link, [handler]}}
  end

  @doc "Starts a server answering with `handler`."
  @spec start_link((request() -> term())) :: GenServer.on_start()
  def start_link(handler), do: GenServer.start_link(__MODULE__, handler)

  @doc "The base URL, `http://127.0.0.1:PORT`."
  @spec url(pid()) :: String.t()
  def url(server), do: "http://127.0.0.1:#{port(server)}"

  @doc "The port the server listens on."
  @spec port(pid()) :: :inet.port_number()
  def port(server), do: GenServer.call(server, :port)

  @doc "The requests received so far, oldest first."
  @spec requests(pid()) :: [request()]
  def requests(server), do: GenServer.call(server, :requests)

  # Callbacks

  @impl true
  def init(handler) do
    {:ok, listen} =
      :gen_tcp.listen(0, [
        :binary,
        packet: :http_bin,
        active: false,
        reuseaddr: true,
        ip: {127, 0, 0, 1},
        backlog: 64
      ])

    {:ok, port} = :inet.port(listen)
    server = self()
    acceptor = spawn_link(fn -> accept_loop(listen, server, handler) end)
    :ok = :gen_tcp.controlling_process(listen, acceptor)
    {:ok, %{port: port, requests: [], acceptor: acceptor}}
  end

  @impl true
  def handle_call(:port, _from, state), do: {:reply, state.port, state}
  def handle_call(:requests, _from, state), do: {:reply, Enum.reverse(state.requests), state}

  @impl true
  def handle_cast({:request, request}, state),
    do: {:noreply, %{state | requests: [request | state.requests]}}

  defp accept_loop(listen, server, handler) do
    {:ok, socket} = :gen_tcp.accept(listen)
    pid = spawn_link(fn -> receive(do: (:go -> serve(socket, server, handler))) end)
    :ok = :gen_tcp.controlling_process(socket, pid)
    send(pid, :go)
    accept_loop(listen, server, handler)
  end

  defp serve(socket, server, handler) do
    case read_request(socket) do
      {:ok, request} ->
        GenServer.cast(server, {:request, request})
        respond(socket, handler.(request))

      {:error, _} ->
        :ok
    end

    :gen_tcp.close(socket)
  end

  defp read_request(socket) do
    with {:ok, {:http_request, method, {:abs_path, target}, _version}} <-
           :gen_tcp.recv(socket, 0, 5_000),
         {:ok, headers} <- read_headers(socket, %{}) do
      {path, query} =
        case String.split(target, "?", parts: 2) do
          [path, query] -> {path, URI.decode_query(query)}
          [path] -> {path, %{}}
        end

      {:ok,
       %{
         method: to_string(method),
         path: URI.decode(path),
         target: target,
         query: query,
         headers: headers
       }}
    else
      other -> {:error, other}
    end
  end

  defp read_headers(socket, acc) do
    case :gen_tcp.recv(socket, 0, 5_000) do
      {:ok, {:http_header, _, name, _, value}} ->
        read_headers(socket, Map.put(acc, String.downcase(to_string(name)), value))

      {:ok, :http_eoh} ->
        {:ok, acc}

      other ->
        {:error, other}
    end
  end

  defp respond(socket, {status, headers, body}) do
    :gen_tcp.send(socket, [head(status, headers, byte_size(body)), body])
  end

  defp respond(socket, {:drop, status, headers, body, sent}) do
    :gen_tcp.send(socket, [head(status, headers, byte_size(body)), binary_part(body, 0, sent)])
  end

  defp respond(socket, :hang) do
    :inet.setopts(socket, packet: :raw)
    # Returns once the client closes its end.
    :gen_tcp.recv(socket, 0)
  end

  defp head(status, headers, length) do
    lines = Enum.map(headers, fn {name, value} -> [name, ": ", to_string(value), "\r\n"] end)

    [
      "HTTP/1.1 #{status} #{reason(status)}\r\n",
      lines,
      "content-length: #{length}\r\nconnection: close\r\n\r\n"
    ]
  end

  defp reason(200), do: "OK"
  defp reason(302), do: "Found"
  defp reason(304), do: "Not Modified"
  defp reason(404), do: "Not Found"
  defp reason(429), do: "Too Many Requests"
  defp reason(403), do: "Forbidden"
  defp reason(500), do: "Internal Server Error"
  defp reason(503), do: "Service Unavailable"
  defp reason(_), do: "Status"
end
