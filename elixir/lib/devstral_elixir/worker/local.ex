defmodule DevstralElixir.Worker.Local do
  @moduledoc """
  A private worker for command-line tasks that need the worker but not a
  model (dataset building): started without a default model and without
  gRPC, so it is up in seconds and never clashes with a running host.
  """

  alias DevstralElixir.{Config, Worker}

  @doc """
  Starts a worker linked to the caller and waits until it answers. `env` adds
  environment variables for the worker process.
  """
  @spec start!(%{optional(String.t()) => String.t()}, timeout()) :: pid()
  def start!(env \\ %{}, timeout \\ 120_000) do
    config = Config.load()

    {:ok, pid} =
      Worker.start_link(
        name: nil,
        python: config.python,
        cd: config.root,
        args: ["--no-grpc"],
        env: Map.merge(%{"MODEL" => "none", "DATA_DIR" => config.data_dir}, env)
      )

    deadline = System.monotonic_time(:millisecond) + timeout
    wait_ready(pid, deadline)
    pid
  end

  defp wait_ready(pid, deadline) do
    cond do
      Worker.info(pid).status == :ready ->
        :ok

      System.monotonic_time(:millisecond) > deadline ->
        raise "the Python worker did not start; is the venv installed (make setup)?"

      true ->
        Process.sleep(100)
        wait_ready(pid, deadline)
    end
  end
end
