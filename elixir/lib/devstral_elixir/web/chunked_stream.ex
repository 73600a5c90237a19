defmodule DevstralElixir.Web.ChunkedStream do
  @moduledoc """
  A streamed HTTP body written by its own process.

  `start/2` spawns the process, which first runs `prepare` (for example:
  open a worker call and wait for its first event). Only when that succeeds
  does the handler commit to a 200 streamed response, so errors found early
  (a prompt over the context length) still get a proper status code.

  The process then waits for the socket and the body's framing (both sent by
  `DevstralElixir.Web.Appmod`, which announced that framing in the headers)
  and yaws' go-ahead, and runs `produce.(state, emit)`. `emit.(iodata)`
  writes its data with one socket write and returns `:ok`, or
  `{:error, reason}` once the client has gone, so the producer can stop.

  Framing is `:chunked` (each emit is one HTTP chunk, and the body ends with
  the zero-size chunk, so the connection can carry the next request) or
  `:close` (the bytes go out as they are and the server closes the
  connection to end the body).

  The process is linked to the request process, and the worker cancels calls
  of processes that exit, so a dropped client stops its generation.
  """

  @type emit :: (iodata() -> :ok | {:error, term()})
  @type framing :: :chunked | :close

  @doc """
  Starts the body process. Returns `{:ok, pid}` to hand to the router result
  `{:stream, status, headers, pid}`, or `{:error, response}` from `prepare`.
  """
  @spec start((() -> {:ok, state} | {:error, response}), (state, emit() -> any())) ::
          {:ok, pid()} | {:error, response}
        when state: term(), response: term()
  def start(prepare, produce) do
    parent = self()
    tag = make_ref()

    pid =
      spawn_link(fn ->
        case prepare.() do
          {:ok, state} ->
            send(parent, {tag, :ready})
            stream(state, produce)

          {:error, response} ->
            send(parent, {tag, {:error, response}})
        end
      end)

    receive do
      {^tag, :ready} -> {:ok, pid}
      {^tag, {:error, response}} -> {:error, response}
    end
  end

  @doc """
  The bytes `data` becomes on the wire under `framing`: one HTTP chunk, or the
  data itself. Empty data is no bytes at all, since an empty chunk would end
  a chunked body.
  """
  @spec frame(iodata(), framing()) :: iodata()
  def frame(data, framing) do
    case {IO.iodata_length(data), framing} do
      {0, _} -> []
      {_size, :close} -> data
      {size, :chunked} -> [Integer.to_string(size, 16), "\r\n", data, "\r\n"]
    end
  end

  defp stream(state, produce) do
    {socket, framing} = receive(do: ({:socket, socket, framing} -> {socket, framing}))

    receive do
      {:ok, yaws_pid} ->
        emit = fn data -> deliver(socket, frame(data, framing)) end

        case produce.(state, emit) do
          {:error, _reason} ->
            # The client is gone: yaws must not reuse the connection.
            :yaws_api.stream_process_end(:closed, yaws_pid)

          _done ->
            if framing == :chunked, do: deliver(socket, "0\r\n\r\n")
            :yaws_api.stream_process_end(socket, yaws_pid)
        end

      {:discard, yaws_pid} ->
        :yaws_api.stream_process_end(socket, yaws_pid)
    end
  end

  defp deliver(_socket, []), do: :ok

  defp deliver(socket, bytes) do
    case :yaws_api.stream_process_deliver(socket, bytes) do
      :ok -> :ok
      {:error, _} = error -> error
    end
  end
end
