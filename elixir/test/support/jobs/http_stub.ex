defmodule DevstralElixir.Test.Jobs.HttpStub do
  @moduledoc """
  A minimal HTTP/1.1 server on 127.0.0.1 for client tests: each connection
  carries one request, parsed into a `DevstralElixir.Web.Request` and answered
  by `handler` (a function returning `{status, headers, body}`), then closed.
  Stands in for the host's yaws server, which lives outside these tests.
  """

  alias DevstralElixir.Web.Request

  @doc "Starts the server under the test supervisor; returns its port."
  @spec start!((Request.t() -> Request.response())) :: :inet.port_number()
  def start!(handler) do
    {:ok, listen} =
      :gen_tcp.listen(0, [
        :binary,
        packet: :http_bin,
        active: false,
        reuseaddr: true,
        ip: {127, 0, 0, 1}
      ])

    {:ok, port} = :inet.port(listen)

    ExUnit.Callbacks.start_supervised!({Task, fn -> accept(listen, handler) end},
      id: {__MODULE__, port}
    )

    port
  end

  defp accept(listen, handler) do
    {:ok, socket} = :gen_tcp.accept(listen)
    serve(socket, handler)
    accept(listen, handler)
  end

  defp serve(socket, handler) do
    with {:ok, {:http_request, method, {:abs_path, target}, _version}} <-
           :gen_tcp.recv(socket, 0, 5_000),
         {:ok, headers} <- headers(socket, %{}),
         {:ok, body} <- body(socket, headers) do
      uri = URI.parse(target)

      request = %Request{
        method: to_string(method),
        path: String.split(uri.path, "/", trim: true),
        query: URI.decode_query(uri.query || ""),
        headers: headers,
        body: body
      }

      {status, resp_headers, resp_body} = handler.(request)
      resp_body = IO.iodata_to_binary(resp_body)

      head =
        ["HTTP/1.1 #{status} X\r\n"] ++
          Enum.map(resp_headers, fn {k, v} -> "#{k}: #{v}\r\n" end) ++
          ["content-length: #{byte_size(resp_body)}\r\nconnection: close\r\n\r\n"]

      :gen_tcp.send(socket, [head, resp_body])
    end

    :gen_tcp.close(socket)
  end

  defp headers(socket, acc) do
    case :gen_tcp.recv(socket, 0, 5_000) do
      {:ok, {:http_header, _, name, _, value}} ->
        headers(socket, Map.put(acc, String.downcase(to_string(name)), value))

      {:ok, :http_eoh} ->
        {:ok, acc}

      other ->
        other
    end
  end

  defp body(socket, headers) do
    :ok = :inet.setopts(socket, packet: :raw)

    case Integer.parse(Map.get(headers, "content-length", "0")) do
      {0, ""} -> {:ok, ""}
      {length, ""} -> :gen_tcp.recv(socket, length, 5_000)
    end
  end
end
