defmodule DevstralElixir.Scrape.Limiter do
  @moduledoc """
  Spaces requests to one API across concurrent downloaders.

  Each caller reserves the next free slot with `reserve/1` and sleeps for the
  returned number of milliseconds itself, so the limiter never blocks. Slots
  are `interval_ms` apart (e.g. 700 ms keeps Hex under 100 requests a
  minute). `pause_for/2` holds every slot back, for when the server says the
  rate-limit window is spent (`x-ratelimit-remaining: 0`).
  """

  use GenServer

  @doc "Starts a limiter. Options: `interval_ms` (required, may be 0)."
  @spec start_link(keyword()) :: GenServer.on_start()
  def start_link(opts) do
    opts = Keyword.validate!(opts, [:interval_ms])
    interval = Keyword.fetch!(opts, :interval_ms)

    unless is_integer(interval) and interval >= 0,
      do:
        raise(
          ArgumentError,
          "interval_ms must be a non-negative integer, got: #{inspect(interval)}"
        )

    GenServer.start_link(__MODULE__, interval)
  end

  @doc "Reserves the next slot and returns how many milliseconds to wait for it."
  @spec reserve(GenServer.server()) :: non_neg_integer()
  def reserve(limiter), do: GenServer.call(limiter, :reserve, :infinity)

  @doc "Holds every slot back for `ms` milliseconds from now."
  @spec pause_for(GenServer.server(), non_neg_integer()) :: :ok
  def pause_for(limiter, ms), do: GenServer.cast(limiter, {:pause_for, ms})

  @doc "Stops the limiter."
  @spec stop(GenServer.server()) :: :ok
  def stop(limiter), do: GenServer.stop(limiter)

  # Callbacks

  @impl true
  def init(interval), do: {:ok, %{interval: interval, next: now(), paused_until: now()}}

  @impl true
  def handle_call(:reserve, _from, state) do
    now = now()
    slot = Enum.max([now, state.next, state.paused_until])
    {:reply, slot - now, %{state | next: slot + state.interval}}
  end

  @impl true
  def handle_cast({:pause_for, ms}, state),
    do: {:noreply, %{state | paused_until: max(state.paused_until, now() + ms)}}

  defp now, do: System.monotonic_time(:millisecond)
end
