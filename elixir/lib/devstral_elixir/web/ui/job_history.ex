defmodule DevstralElixir.Web.UI.JobHistory do
  @moduledoc """
  The recent progress events of each job, for the job page's log and loss
  chart (a job record keeps only its latest progress).

  It subscribes to every job's events (`DevstralElixir.Jobs.Events`) and
  keeps, in a protected ETS table, the last 500 progress maps of the
  100 most recently active jobs, each as JSON-safe data with string keys.
  The history lives in memory: after a restart a job page starts from the
  job's latest progress.
  """
  use GenServer

  alias DevstralElixir.Jobs.{Events, Job}

  @table __MODULE__
  @per_job 500
  @jobs 100

  # Public API

  @doc "Starts the history. Options: `:events` (the events registry)."
  @spec start_link(keyword()) :: GenServer.on_start()
  def start_link(opts \\ []) do
    opts = Keyword.validate!(opts, events: Events)
    GenServer.start_link(__MODULE__, opts, name: __MODULE__)
  end

  @doc "The recorded progress maps of a job, oldest first (empty when none or not running)."
  @spec events(Job.id()) :: [map()]
  def events(job_id) do
    case :ets.lookup(@table, job_id) do
      [{^job_id, _seq, events}] -> Enum.reverse(events)
      [] -> []
    end
  rescue
    ArgumentError -> []
  end

  @doc "One progress map in the JSON-safe form the history keeps."
  @spec entry(map()) :: map()
  def entry(progress), do: Job.json_safe(progress)

  # Callbacks

  @impl true
  def init(opts) do
    :ets.new(@table, [:named_table, :protected, :set, read_concurrency: true])
    :ok = Events.subscribe(:all, opts[:events])
    {:ok, %{seq: 0}}
  end

  @impl true
  def handle_info({Events, id, {:progress, progress}}, state) do
    seq = state.seq + 1

    events =
      case :ets.lookup(@table, id) do
        [{^id, _seq, events}] -> Enum.take([entry(progress) | events], @per_job)
        [] -> [entry(progress)]
      end

    :ets.insert(@table, {id, seq, events})
    if :ets.info(@table, :size) > @jobs, do: evict_oldest()
    {:noreply, %{state | seq: seq}}
  end

  def handle_info(_other, state), do: {:noreply, state}

  defp evict_oldest do
    {id, _seq} =
      :ets.foldl(
        fn {id, seq, _}, {_, best} = acc -> if seq < best, do: {id, seq}, else: acc end,
        {nil, :infinity},
        @table
      )

    :ets.delete(@table, id)
  end
end
