defmodule DevstralElixir.Test.Jobs.ScriptedRunner do
  @moduledoc """
  A job runner for the queue tests that does real, observable work: it tells
  the test process (`args.test`) when each attempt starts, reports progress,
  and then acts out `args.mode`:

    * `:succeed` - `{:ok, %{attempt: n}}`
    * `{:fail_until, n}` - `{:error, _}` on attempts before `n`, then success
    * `:always_fail` - `{:error, _}`
    * `:discard` - `{:discard, _}`
    * `:raise_once` - raises on attempt 1
    * `:kill_once` - kills its own process on attempt 1 (a `:DOWN` with `:killed`)
    * `:block` - waits for `{:finish, reply}` from the test and returns `reply`

  `cancel/1` tells the test too.
  """

  @behaviour DevstralElixir.Jobs.Runner

  @impl true
  def run(job, report) do
    test = job.args.test
    send(test, {:job_started, job.id, job.attempts, self()})
    :ok = report.(%{"step" => job.attempts, "total_steps" => job.max_attempts})
    act(job.args.mode, job)
  end

  @impl true
  def cancel(job) do
    send(job.args.test, {:cancel_called, job.id})
    :ok
  end

  @impl true
  def resource(args), do: Map.get(args, :resource)

  @impl true
  def validate_args(%{test: pid, mode: _}) when is_pid(pid), do: :ok

  def validate_args(args),
    do: {:error, "scripted jobs need :test and :mode, got #{inspect(args)}"}

  defp act(:succeed, job), do: {:ok, %{attempt: job.attempts}}

  defp act({:fail_until, n}, job) do
    if job.attempts < n,
      do: {:error, "attempt #{job.attempts} failed"},
      else: {:ok, %{attempt: job.attempts}}
  end

  defp act(:always_fail, job), do: {:error, "attempt #{job.attempts} failed"}
  defp act(:discard, _job), do: {:discard, "these args can never work"}

  defp act(:raise_once, %{attempts: 1}), do: raise("kaboom")
  defp act(:raise_once, job), do: {:ok, %{attempt: job.attempts}}

  defp act(:kill_once, %{attempts: 1}) do
    Process.exit(self(), :kill)
    # Never reached: the kill is delivered before the process can return.
    receive do: (:never -> :ok)
  end

  defp act(:kill_once, job), do: {:ok, %{attempt: job.attempts}}

  defp act(:block, _job) do
    receive do
      {:finish, reply} -> reply
    end
  end
end
