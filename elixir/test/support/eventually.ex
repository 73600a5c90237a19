defmodule DevstralElixir.Test.Eventually do
  @moduledoc """
  Polling with a deadline, for tests that wait on another OS process: no
  fixed sleeps, and a clear failure when the condition never holds.
  """

  @doc "Calls `fun` every `interval` ms until it returns a truthy value (returned) or `timeout` ms pass (raises)."
  @spec eventually((() -> any()), pos_integer(), pos_integer()) :: any()
  def eventually(fun, timeout \\ 30_000, interval \\ 50) do
    deadline = System.monotonic_time(:millisecond) + timeout
    poll(fun, deadline, interval)
  end

  defp poll(fun, deadline, interval) do
    case fun.() do
      result when result not in [nil, false] ->
        result

      _ ->
        if System.monotonic_time(:millisecond) > deadline do
          raise ExUnit.AssertionError, message: "condition not met before the deadline"
        end

        Process.sleep(interval)
        poll(fun, deadline, interval)
    end
  end
end
