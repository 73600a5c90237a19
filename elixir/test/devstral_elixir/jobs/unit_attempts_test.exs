defmodule DevstralElixir.Jobs.UnitAttemptsTest do
  # Mnesia is one per node: these tests own it one at a time.
  use ExUnit.Case, async: false

  import DevstralElixir.Test.Jobs.QueueHelpers

  alias DevstralElixir.Jobs.{Events, Job, Queue}

  defmodule UnitsRunner do
    @moduledoc """
    A runner with several units of work, like a curriculum's stages: each
    unit is done once its marker file exists in `args.dir`; a unit listed in
    `args.crashes` fails that many attempts before it completes. Every
    announced unit is sent to the test with the job's stored attempts.
    """

    @behaviour DevstralElixir.Jobs.Runner

    @impl true
    def run(job, report) do
      %{dir: dir, units: units, crashes: crashes, test: test} = job.args

      Enum.reduce_while(units, {:ok, :done}, fn unit, ok ->
        done = Path.join(dir, "#{unit}.done")

        if File.exists?(done) do
          {:cont, ok}
        else
          :ok = report.({:unit, unit})
          {:ok, stored} = Queue.get(job.args.queue, job.id)
          send(test, {:unit, unit, stored.attempts, stored.total_attempts})
          failed = Path.join(dir, "#{unit}.failed") |> File.ls!() |> length()

          if failed < Map.get(crashes, unit, 0) do
            File.touch!(Path.join([dir, "#{unit}.failed", "#{failed + 1}"]))
            {:halt, {:error, "#{unit} crashed"}}
          else
            File.touch!(done)
            {:cont, ok}
          end
        end
      end)
    end
  end

  setup do
    data_dir = tmp_dir("units")
    ctx = start_queue(data_dir, runners: %{scrape: UnitsRunner})
    Events.subscribe(:all, ctx.events)
    Map.put(ctx, :work, Path.join(data_dir, "work"))
  end

  defp enqueue!(ctx, units, crashes) do
    for unit <- units, do: File.mkdir_p!(Path.join([ctx.work, "#{unit}.failed"]))

    args = %{
      dir: ctx.work,
      units: units,
      crashes: crashes,
      test: self(),
      queue: ctx.queue
    }

    {:ok, job} = Queue.enqueue(ctx.queue, :scrape, args, max_attempts: 3)
    job
  end

  defp await_final(id) do
    receive do
      {Events, ^id, {:state, %Job{} = job}} ->
        if Job.final?(job), do: job, else: await_final(id)
    after
      10_000 -> flunk("job #{id} did not end within 10 s")
    end
  end

  test "crashes in different units leave each next unit its full budget", ctx do
    # Two crashes in each of three units: six failed attempts in all, with
    # max_attempts 3. Counted per job this fails at attempt 3.
    job = enqueue!(ctx, ~w(s1 s2 s3), %{"s1" => 2, "s2" => 2, "s3" => 2})
    done = await_final(job.id)

    assert done.state == :succeeded, done.error
    assert done.total_attempts == 7
    assert done.attempts == 3
    assert done.unit == "s3"

    # Each unit starts at attempt 1, whatever the units before it spent.
    assert_received {:unit, "s1", 1, 1}
    assert_received {:unit, "s1", 3, 3}
    assert_received {:unit, "s2", 1, 3}
    assert_received {:unit, "s2", 3, 5}
    assert_received {:unit, "s3", 1, 5}
    assert_received {:unit, "s3", 3, 7}
  end

  test "a unit that keeps crashing still fails the job after max_attempts", ctx do
    job = enqueue!(ctx, ~w(s1 s2), %{"s1" => 1, "s2" => 5})
    done = await_final(job.id)

    assert done.state == :failed
    assert done.error == "s2 crashed"
    assert done.unit == "s2"
    assert done.attempts == 3
    assert done.total_attempts == 4
    refute File.exists?(Path.join(ctx.work, "s2.done"))
  end

  test "attempts and the unit are in the job's JSON", ctx do
    job = enqueue!(ctx, ~w(s1), %{})
    done = await_final(job.id)
    json = Job.to_json(done)

    assert {json["unit"], json["attempts"], json["total_attempts"]} == {"s1", 1, 1}
  end
end
