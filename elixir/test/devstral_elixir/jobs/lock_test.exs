defmodule DevstralElixir.Jobs.LockTest do
  use ExUnit.Case, async: true

  alias DevstralElixir.Jobs.Lock
  alias DevstralElixir.Test.Jobs.QueueHelpers

  setup do
    dir = Path.join(System.tmp_dir!(), "devstral-lock-#{System.unique_integer([:positive])}")
    on_exit(fn -> File.rm_rf!(dir) end)
    %{dir: dir}
  end

  test "acquire writes this BEAM's pid; taking it again is fine", %{dir: dir} do
    assert :ok = Lock.acquire(dir)
    assert File.read!(Lock.path(dir)) == System.pid()
    assert {:ok, pid} = Lock.holder(dir)
    assert pid == System.pid()
    assert :ok = Lock.acquire(dir)
    assert :ok = Lock.check(dir)
    assert :ok = Lock.release(dir)
    refute File.exists?(Lock.path(dir))
  end

  test "a stale lock (dead pid, or garbage) is taken over", %{dir: dir} do
    File.mkdir_p!(dir)
    # A pid that cannot be a live process: above the kernel's pid_max.
    File.write!(Lock.path(dir), "99999999")
    assert Lock.holder(dir) == :none
    assert :ok = Lock.acquire(dir)
    assert File.read!(Lock.path(dir)) == System.pid()

    File.write!(Lock.path(dir), "not a pid")
    assert :ok = Lock.acquire(dir)
  end

  test "a live process that is not a BEAM does not hold the lock (pid reuse)", %{dir: dir} do
    File.mkdir_p!(dir)
    port = Port.open({:spawn_executable, System.find_executable("sleep")}, args: ["60"])
    {:os_pid, os_pid} = Port.info(port, :os_pid)
    File.write!(Lock.path(dir), Integer.to_string(os_pid))

    assert Lock.holder(dir) == :none
    assert :ok = Lock.acquire(dir)

    Port.close(port)
    System.cmd("kill", [Integer.to_string(os_pid)])
  end

  test "another live BEAM holds it: acquire and check fail naming it", %{dir: dir} do
    File.mkdir_p!(dir)
    {_port, os_pid} = beam = QueueHelpers.fake_beam!()
    File.write!(Lock.path(dir), os_pid)

    assert {:error, message} = Lock.acquire(dir)
    assert message =~ "in use by another BEAM (OS pid #{os_pid}"
    assert {:error, ^message} = Lock.check(dir)
    # release leaves another BEAM's lock alone
    assert :ok = Lock.release(dir)
    assert File.exists?(Lock.path(dir))

    QueueHelpers.stop_fake_beam(beam)
  end
end
