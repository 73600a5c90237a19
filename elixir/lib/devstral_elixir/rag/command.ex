defmodule DevstralElixir.Rag.Command do
  @moduledoc """
  How the `mix rag.*` tasks that are not jobs (`rag.search`, `rag.stats`)
  reach the memory: through the host answering on `127.0.0.1:$HTTP_PORT`
  (its `/api/rag/*` API) when one is up, since the embedded store admits one
  process; else through a worker started in this process. Where to run is
  decided by `DevstralElixir.Jobs.CLI.with_connection!/3`, as for jobs.
  """

  alias DevstralElixir.Jobs.{CLI, Client}
  alias DevstralElixir.Worker

  # The first memory call loads the embedder (and, locally, the worker starts).
  @timeout_ms 300_000

  @doc """
  Sends the console log to stderr, so that a task's stdout holds only its
  JSON answer (`--json`), even when a worker starts in this process.
  """
  @spec logs_to_stderr() :: :ok
  def logs_to_stderr do
    # After the configuration is loaded, which would set the console back.
    Mix.Task.run("app.config")
    _ = Logger.configure_backend(:console, device: :standard_error)
    :ok
  end

  @doc """
  Runs one memory call for `mix task`: `http` (`{method, path, body}`) on a
  running host, else `local.(worker)` against an in-process worker that loads
  no generation model. Returns the JSON answer; raises `Mix.Error` naming the
  task with the host's or the worker's message.
  """
  @spec call!(
          String.t(),
          {:get | :post, String.t(), map() | nil},
          (GenServer.server() -> {:ok, map()} | {:error, Exception.t()})
        ) :: map()
  def call!(task, {method, path, body}, local) do
    result =
      CLI.with_connection!(task, [worker: :memory], fn
        {:http, _base, _token} = conn ->
          Client.request(conn, method, path, body, @timeout_ms)

        {:local, _queue, _events} ->
          case with(:ok <- Worker.await_ready(Worker, @timeout_ms), do: local.(Worker)) do
            {:ok, answer} -> {:ok, answer}
            {:error, error} -> {:error, Exception.message(error)}
          end
      end)

    case result do
      {:ok, answer} -> answer
      {:error, message} -> Mix.raise("mix #{task}: #{message}")
    end
  end
end
