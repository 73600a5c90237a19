defmodule DevstralElixir.Test.Jobs.QueueHelpers do
  @moduledoc """
  Starting a job queue in a test: its own data directory (so its own Mnesia
  directory), task supervisor and events registry. Mnesia is one per node, so
  tests that use these helpers must be `async: false`.
  """

  import ExUnit.Callbacks

  alias DevstralElixir.Jobs.{Events, Queue}
  alias DevstralElixir.Test.Jobs.ScriptedRunner

  @doc "A fresh, empty directory under the system temp dir, removed after the test."
  @spec tmp_dir(String.t()) :: Path.t()
  def tmp_dir(label) do
    dir =
      Path.join(System.tmp_dir!(), "devstral-test-#{label}-#{System.unique_integer([:positive])}")

    File.rm_rf!(dir)
    File.mkdir_p!(dir)

    on_exit(fn ->
      _ = :mnesia.stop()
      File.rm_rf!(dir)
    end)

    dir
  end

  @doc """
  Stops Mnesia (it may be running in another test's directory), then starts a
  task supervisor, an events registry and a queue on `data_dir`, with the
  scripted runner for every type but `:curriculum` and the `:runners` option
  merged over that. Returns a map
  with `:queue`, `:events`, `:data_dir` and the `:opts` to restart the queue with.
  """
  @spec start_queue(Path.t(), keyword()) :: map()
  def start_queue(data_dir, opts \\ []) do
    :stopped = :mnesia.stop()
    suffix = System.unique_integer([:positive])
    sup = :"jobs_test_tasks_#{suffix}"
    events = :"jobs_test_events_#{suffix}"
    queue = :"jobs_test_queue_#{suffix}"

    start_supervised!({Task.Supervisor, name: sup}, id: sup)
    start_supervised!({Events, name: events}, id: events)

    # The queue has no runners of its own: every type but curriculum is
    # scripted unless the test registers its own (merged over these).
    scripted =
      for type <- [:scrape, :build_dataset, :train_stage, :evaluate],
          into: %{},
          do: {type, ScriptedRunner}

    {runners, opts} = Keyword.pop(opts, :runners, %{})

    opts =
      Keyword.merge(
        [
          name: queue,
          data_dir: data_dir,
          task_supervisor: sup,
          events: events,
          runners: Map.merge(scripted, runners),
          backoff_base_ms: 5,
          backoff_max_ms: 20
        ],
        opts
      )

    start_supervised!({Queue, opts}, id: :queue)
    %{queue: queue, events: events, data_dir: data_dir, opts: opts}
  end

  @doc """
  Stops the queue and Mnesia, as a host restart would, and starts the queue
  again on the same data directory (with `opts` merged over the first start's).
  """
  @spec restart_queue(map(), keyword()) :: :ok
  def restart_queue(%{opts: opts}, overrides \\ []) do
    :ok = stop_supervised(:queue)
    :stopped = :mnesia.stop()
    start_supervised!({Queue, Keyword.merge(opts, overrides)}, id: :queue)
    :ok
  end

  @doc """
  Starts a live OS process whose command line says "beam", as another
  BEAM's would, and returns `{port, os_pid}` once it has exec'ed. Close the
  port and kill the pid when done.
  """
  @spec fake_beam!() :: {port(), String.t()}
  def fake_beam! do
    bash = System.find_executable("bash")
    port = Port.open({:spawn_executable, bash}, args: ["-c", "exec -a beam.smp sleep 60"])
    {:os_pid, os_pid} = Port.info(port, :os_pid)
    os_pid = Integer.to_string(os_pid)

    DevstralElixir.Test.Eventually.eventually(fn ->
      match?({:ok, "beam.smp" <> _}, File.read("/proc/#{os_pid}/cmdline"))
    end)

    {port, os_pid}
  end

  @doc "Stops a `fake_beam!/0`."
  @spec stop_fake_beam({port(), String.t()}) :: :ok
  def stop_fake_beam({port, os_pid}) do
    Port.close(port)
    System.cmd("kill", [os_pid])
    :ok
  end

  @doc "Waits for the job's next state event with `state` and returns the job."
  defmacro assert_state(id, state, timeout \\ 5_000) do
    quote do
      id = unquote(id)
      state = unquote(state)

      assert_receive {DevstralElixir.Jobs.Events, ^id, {:state, %{state: ^state} = job}},
                     unquote(timeout)

      job
    end
  end

  @doc "Waits for the job to go back to `:queued` after a failed attempt; returns the job."
  defmacro assert_retry(id, timeout \\ 5_000) do
    quote do
      id = unquote(id)

      assert_receive {DevstralElixir.Jobs.Events, ^id,
                      {:state, %{state: :queued, attempts: attempts} = job}}
                     when attempts > 0,
                     unquote(timeout)

      job
    end
  end
end
