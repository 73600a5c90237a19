defmodule DevstralElixir.Jobs.QueueTest do
  # Mnesia is one per node: these tests own it one at a time.
  use ExUnit.Case, async: false

  import DevstralElixir.Test.Jobs.QueueHelpers
  import ExUnit.CaptureLog

  alias DevstralElixir.Jobs.{Events, Job, Lock, Queue, Store}

  setup do
    ctx = start_queue(tmp_dir("queue"))
    Events.subscribe(:all, ctx.events)
    ctx
  end

  defp enqueue!(ctx, mode, opts \\ [], extra_args \\ %{}) do
    {:ok, job} =
      Queue.enqueue(ctx.queue, :scrape, Map.merge(%{test: self(), mode: mode}, extra_args), opts)

    job
  end

  describe "running jobs" do
    test "a job runs, reports progress and succeeds, and it is all in Mnesia", ctx do
      job = enqueue!(ctx, :succeed)
      id = job.id

      assert_receive {:job_started, ^id, 1, _pid}
      assert_receive {Events, ^id, {:progress, %{"step" => 1}}}
      done = assert_state(id, :succeeded)

      assert done.result == %{attempt: 1}
      assert done.attempts == 1
      assert done.finished_at
      assert {:ok, stored} = Queue.get(ctx.queue, id)
      assert stored.state == :succeeded
      assert stored.progress == %{"step" => 1, "total_steps" => 3}
      assert {:ok, %Job{state: :succeeded}} = Store.fetch(id)
    end

    test "a failing job is retried with backoff, then fails after max_attempts", ctx do
      job = enqueue!(ctx, :always_fail, max_attempts: 3)
      id = job.id

      for attempt <- 1..3, do: assert_receive({:job_started, ^id, ^attempt, _pid})
      failed = assert_state(id, :failed)

      assert failed.attempts == 3
      assert failed.error == "attempt 3 failed"
      refute_received {:job_started, ^id, 4, _}
    end

    test "each retry waits longer than the one before (exponential backoff)", ctx do
      job = enqueue!(ctx, :always_fail, max_attempts: 3)
      id = job.id

      retry1 = assert_retry(id)
      retry2 = assert_retry(id)
      assert DateTime.diff(retry1.scheduled_at, retry1.updated_at, :millisecond) == 5
      assert DateTime.diff(retry2.scheduled_at, retry2.updated_at, :millisecond) == 10
      assert retry2.error == "attempt 2 failed"
      assert_state(id, :failed)
    end

    test "a job that fails once then works ends succeeded on attempt 2", ctx do
      id = enqueue!(ctx, {:fail_until, 2}).id
      done = assert_state(id, :succeeded)
      assert done.attempts == 2
      # The error of the failed attempt stays visible.
      assert done.error == "attempt 1 failed"
    end

    test "{:discard, reason} fails the job at once, without retry", ctx do
      id = enqueue!(ctx, :discard, max_attempts: 5).id
      failed = assert_state(id, :failed)
      assert failed.attempts == 1
      assert failed.error == "these args can never work"
    end

    test "a raising task fails the attempt and is retried", ctx do
      id = enqueue!(ctx, :raise_once).id
      retried = assert_retry(id)
      assert retried.error =~ "kaboom"
      assert_receive {:job_started, ^id, 2, _pid}
      assert assert_state(id, :succeeded).attempts == 2
    end

    test "a killed task (:DOWN with :killed) fails the attempt and is retried", ctx do
      id = enqueue!(ctx, :kill_once).id
      retried = assert_retry(id)
      assert retried.error =~ "killed"
      assert assert_state(id, :succeeded).attempts == 2
    end
  end

  describe "cancel" do
    test "a queued job is cancelled without running", ctx do
      later = DateTime.add(DateTime.utc_now(), 3600, :second)
      job = enqueue!(ctx, :succeed, scheduled_at: later)
      assert job.state == :queued

      assert {:ok, %Job{state: :cancelled}} = Queue.cancel(ctx.queue, job.id)
      assert {:error, {:final, :cancelled}} = Queue.cancel(ctx.queue, job.id)
      refute_received {:job_started, _, _, _}
    end

    test "a running job: the runner's cancel is called and its task is killed", ctx do
      id = enqueue!(ctx, :block).id
      assert_receive {:job_started, ^id, 1, pid}
      ref = Process.monitor(pid)

      assert {:ok, %Job{state: :cancelled}} = Queue.cancel(ctx.queue, id)
      assert_receive {:cancel_called, ^id}
      assert_receive {:DOWN, ^ref, :process, ^pid, :killed}
      assert {:ok, %Job{state: :cancelled, attempts: 1}} = Queue.get(ctx.queue, id)
    end

    test "unknown jobs", ctx do
      assert {:error, :not_found} = Queue.cancel(ctx.queue, 424_242)
      assert {:error, :not_found} = Queue.get(ctx.queue, 424_242)
    end
  end

  describe "dispatch order and limits" do
    test "higher priority (lower number) runs first", %{data_dir: _} = ctx do
      restart_with(ctx, limit: 1)
      blocker = enqueue!(ctx, :block).id
      assert_receive {:job_started, ^blocker, 1, blocker_pid}

      low = enqueue!(ctx, :succeed, priority: 9).id
      mid = enqueue!(ctx, :succeed, priority: 5).id
      high = enqueue!(ctx, :succeed, priority: 0).id
      send(blocker_pid, {:finish, {:ok, :done}})

      assert_receive {:job_started, first, 1, _}
      assert_receive {:job_started, second, 1, _}
      assert_receive {:job_started, third, 1, _}
      assert [first, second, third] == [high, mid, low]
    end

    test "two jobs on one resource never overlap; other resources run alongside", ctx do
      train1 = enqueue!(ctx, :block, resource: "worker:default").id
      train2 = enqueue!(ctx, :block, resource: "worker:default").id
      other = enqueue!(ctx, :block, resource: "worker:other").id

      assert_receive {:job_started, ^train1, 1, pid1}
      assert_receive {:job_started, ^other, 1, pid_other}
      # Dispatch is synchronous with enqueue, so this state is settled.
      assert {:ok, %Job{state: :queued}} = Queue.get(ctx.queue, train2)
      refute_received {:job_started, ^train2, _, _}

      send(pid1, {:finish, {:ok, :one}})
      assert_receive {:job_started, ^train2, 1, pid2}
      assert {:ok, %Job{state: :succeeded}} = Queue.get(ctx.queue, train1)

      send(pid2, {:finish, {:ok, :two}})
      send(pid_other, {:finish, {:ok, :other}})
      assert_state(train2, :succeeded)
    end

    test "the runner's resource/1 is the default resource", ctx do
      job = enqueue!(ctx, :succeed, [], %{resource: "worker:gpu1"})
      assert job.resource == "worker:gpu1"
      assert enqueue!(ctx, :succeed, resource: "explicit").resource == "explicit"
    end

    test "per-resource limits above 1", ctx do
      restart_with(ctx, resource_limits: %{"scrapers" => 2})
      a = enqueue!(ctx, :block, resource: "scrapers").id
      b = enqueue!(ctx, :block, resource: "scrapers").id
      c = enqueue!(ctx, :block, resource: "scrapers").id

      assert_receive {:job_started, ^a, 1, pid_a}
      assert_receive {:job_started, ^b, 1, pid_b}
      assert {:ok, %Job{state: :queued}} = Queue.get(ctx.queue, c)

      send(pid_a, {:finish, {:ok, :a}})
      assert_receive {:job_started, ^c, 1, pid_c}
      for pid <- [pid_b, pid_c], do: send(pid, {:finish, {:ok, :x}})
      assert_state(c, :succeeded)
    end
  end

  describe "durability" do
    test "a restart re-queues the running job and runs it again", ctx do
      id = enqueue!(ctx, :block).id
      assert_receive {:job_started, ^id, 1, old_pid}
      ref = Process.monitor(old_pid)

      restart_queue(ctx)

      # The old attempt's task died with the queue; the job runs again, and
      # the interrupted attempt does not count.
      assert_receive {:DOWN, ^ref, :process, ^old_pid, :killed}
      assert_receive {:job_started, ^id, 1, new_pid}
      assert {:ok, %Job{state: :running} = job} = Queue.get(ctx.queue, id)
      assert job.error =~ "interrupted by a restart"

      send(new_pid, {:finish, {:ok, :resumed}})
      assert assert_state(id, :succeeded).result == :resumed
    end

    test "a queue killed outright: its restart kills the orphaned task and runs the job again",
         ctx do
      id = enqueue!(ctx, :block).id
      assert_receive {:job_started, ^id, 1, old_pid}
      ref = Process.monitor(old_pid)

      # No terminate/2 runs; the test supervisor restarts the queue.
      Process.exit(GenServer.whereis(ctx.queue), :kill)

      assert_receive {:DOWN, ^ref, :process, ^old_pid, :killed}
      assert_receive {:job_started, ^id, 1, new_pid}
      send(new_pid, {:finish, {:ok, :again}})
      assert assert_state(id, :succeeded).result == :again
    end

    test "recovery never kills a process that is not the job's task (pid reuse)", ctx do
      :ok = stop_supervised(:queue)
      bystander = spawn(fn -> receive do: (:stop -> :ok) end)

      job = %Job{
        type: :scrape,
        args: %{test: self(), mode: :succeed},
        state: :running,
        attempts: 1,
        pid: bystander,
        scheduled_at: DateTime.utc_now()
      }

      {:ok, job} = Store.insert(job)
      :stopped = :mnesia.stop()
      start_supervised!({Queue, ctx.opts}, id: :queue)

      assert assert_state(job.id, :succeeded).attempts == 1
      assert Process.alive?(bystander)
      send(bystander, :stop)
    end

    test "500 concurrent enqueues: every job is in Mnesia after a restart", ctx do
      restart_queue(ctx, limit: 0)

      ids =
        1..500
        |> Task.async_stream(fn i -> enqueue!(ctx, :succeed, priority: rem(i, 10)).id end,
          max_concurrency: 50,
          ordered: false
        )
        |> Enum.map(fn {:ok, id} -> id end)

      assert length(Enum.uniq(ids)) == 500

      restart_queue(ctx, limit: 0)

      stored = Queue.list(ctx.queue, limit: 1000)
      assert length(stored) == 500
      assert Enum.sort(Enum.map(stored, & &1.id)) == Enum.sort(ids)
      assert Enum.all?(stored, &(&1.state == :queued))
      assert Store.count() == 500
    end

    test "list filters by state and type, newest first", ctx do
      a = enqueue!(ctx, :succeed).id
      assert_state(a, :succeeded)
      later = DateTime.add(DateTime.utc_now(), 3600, :second)
      b = enqueue!(ctx, :succeed, scheduled_at: later).id

      {:ok, c} =
        Queue.enqueue(ctx.queue, "evaluate", %{test: self(), mode: :succeed}, scheduled_at: later)

      assert [c.id, b, a] == Enum.map(Queue.list(ctx.queue), & &1.id)
      assert [c.id, b] == Enum.map(Queue.list(ctx.queue, state: :queued), & &1.id)
      assert [c.id] == Enum.map(Queue.list(ctx.queue, type: :evaluate), & &1.id)
      assert [c.id] == Enum.map(Queue.list(ctx.queue, limit: 1), & &1.id)
    end
  end

  describe "enqueue validation" do
    test "bad types, options and args are rejected with a message", ctx do
      args = %{test: self(), mode: :succeed}
      assert {:error, "type must be one of" <> _} = Queue.enqueue(ctx.queue, :nope, args)
      assert {:error, "type must be one of" <> _} = Queue.enqueue(ctx.queue, "scrapes", args)

      assert {:error, "priority must be" <> _} =
               Queue.enqueue(ctx.queue, :scrape, args, priority: 10)

      assert {:error, "max_attempts must be" <> _} =
               Queue.enqueue(ctx.queue, :scrape, args, max_attempts: 0)

      assert {:error, "args must be a map" <> _} = Queue.enqueue(ctx.queue, :scrape, [1])
      assert {:error, "scripted jobs need" <> _} = Queue.enqueue(ctx.queue, :scrape, %{})
      assert Queue.list(ctx.queue) == []
    end

    test "a type without a registered runner is rejected", ctx do
      # The queue knows no types of its own: only those registered at start.
      restart_with(ctx, runners: %{scrape: DevstralElixir.Test.Jobs.ScriptedRunner})

      for type <- [:evaluate, "curriculum"] do
        assert {:error, message} = Queue.enqueue(ctx.queue, type, %{})
        assert message == "type must be one of scrape, got #{inspect(type)}"
      end
    end
  end

  describe "the Mnesia directory lock" do
    test "a queue will not open a directory another live BEAM holds", ctx do
      dir = Store.mnesia_dir(ctx.data_dir)
      {_port, os_pid} = beam = fake_beam!()

      :ok = stop_supervised(:queue)
      :stopped = :mnesia.stop()
      File.write!(Lock.path(dir), os_pid)

      assert {:error, message} = Queue.check_lock(ctx.data_dir)
      assert message =~ "OS pid #{os_pid}"

      Process.flag(:trap_exit, true)

      log =
        capture_log(fn ->
          {:ok, pid} = Queue.start_link(Keyword.put(ctx.opts, :name, nil))
          assert_receive {:EXIT, ^pid, {:setup_failed, reason}}, 5_000
          assert reason =~ "in use by another BEAM"
        end)

      assert log =~ "job queue cannot start"
      assert :mnesia.system_info(:is_running) == :no

      stop_fake_beam(beam)
    end
  end

  # A queue with other options on the same data directory.
  defp restart_with(ctx, opts) do
    :ok = stop_supervised(:queue)
    :stopped = :mnesia.stop()
    start_supervised!({Queue, Keyword.merge(ctx.opts, opts)}, id: :queue)
  end
end
