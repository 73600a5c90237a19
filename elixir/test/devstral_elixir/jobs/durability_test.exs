defmodule DevstralElixir.Jobs.DurabilityTest do
  # A second BEAM writes to a data directory and is killed with SIGKILL; this
  # BEAM then opens the same directory. Uses Mnesia: not async.
  use ExUnit.Case, async: false

  import DevstralElixir.Test.Jobs.QueueHelpers

  alias DevstralElixir.Jobs.Queue

  @jobs 50

  test "jobs enqueued in a BEAM killed with kill -9 are all there after a restart" do
    dir = tmp_dir("durability")

    script = """
    alias DevstralElixir.Jobs.{Events, Queue}
    {:ok, _} = Task.Supervisor.start_link(name: :tasks)
    {:ok, _} = Registry.start_link(keys: :duplicate, name: Events)
    {:ok, _} = Queue.start_link(data_dir: #{inspect(dir)}, task_supervisor: :tasks, limit: 0,
                                runners: %{evaluate: DevstralElixir.Test.Jobs.EchoRunner})
    ids = for i <- 1..#{@jobs}, do: elem(Queue.enqueue(Queue, :evaluate, %{"i" => i}), 1).id
    IO.puts("enqueued " <> Enum.join(ids, ","))
    Process.sleep(:infinity)
    """

    ebin = Application.app_dir(:devstral_elixir, "ebin")

    port =
      Port.open({:spawn_executable, System.find_executable("elixir")}, [
        :binary,
        :exit_status,
        :stderr_to_stdout,
        line: 65_536,
        args: ["-pa", ebin, "-e", script]
      ])

    {:os_pid, os_pid} = Port.info(port, :os_pid)
    ids = await_enqueued(port)
    assert length(ids) == @jobs

    # The whole BEAM dies at once: nothing gets to flush or stop.
    {_, 0} = System.cmd("kill", ["-9", Integer.to_string(os_pid)])
    assert_receive {^port, {:exit_status, 137}}, 10_000

    # Its lock is now stale; this BEAM takes the directory over.
    ctx = start_queue(dir, limit: 0)
    stored = Queue.list(ctx.queue, limit: 1_000)
    assert Enum.sort(Enum.map(stored, & &1.id)) == Enum.sort(ids)
    assert Enum.all?(stored, &(&1.state == :queued and &1.args["i"] in 1..@jobs))
  end

  defp await_enqueued(port) do
    receive do
      {^port, {:data, {:eol, "enqueued " <> ids}}} ->
        ids |> String.split(",") |> Enum.map(&String.to_integer/1)

      {^port, {:data, _other_output}} ->
        await_enqueued(port)

      {^port, {:exit_status, status}} ->
        flunk("the child BEAM exited with status #{status}")
    after
      60_000 -> flunk("the child BEAM did not enqueue its jobs in time")
    end
  end
end
