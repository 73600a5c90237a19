defmodule DevstralElixir.Web.ChunkedStream do
  @moduledoc """
  A streamed HTTP body written by its own process.

  `start/2` spawns the process, which first runs `prepare` (for example:
  open a worker call and wait for its first event). Only when that succeeds
  does the handler commit to a 200 streamed response, so errors found early
  (a prompt over the context length) still get a proper status code.

  The process then waits for the socket (sent by `DevstralElixir.Web.Appmod`)
  and yaws' go-ahead, and runs `produce.(state, emit)`. `emit.(iodata)`
  writes one chunk and returns `:ok`, or `{:error, reason}` once the client
  has gone, so the producer can stop. The process is linked to the request
  process, and the worker cancels calls of processes that exit, so a dropped
  client stops its generation.
  """

  @type emit :: (iodata() -> :ok | {:error, term()})

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

  defp stream(state, produce) do
    socket = receive(do: ({:socket, socket} -> socket))

    receive do
      {:ok, yaws_pid} ->
        produce.(state, fn chunk -> deliver(socket, chunk) end)
        _ = :yaws_api.stream_process_deliver_final_chunk(socket, "")
        :yaws_api.stream_process_end(socket, yaws_pid)

      {:discard, yaws_pid} ->
        :yaws_api.stream_process_end(socket, yaws_pid)
    end
  end

  defp deliver(socket, chunk) do
    case :yaws_api.stream_process_deliver_chunk(socket, chunk) do
      {:error, _} = error -> error
      _ok -> :ok
    end
  end
end
