defmodule DevstralElixir.Jobs.Store do
  @moduledoc """
  The Mnesia side of the job queue: two `disc_copies` tables in a directory
  of their own, `DATA_DIR/mnesia/<node>`.

    * `:devstral_jobs` - `{:devstral_jobs, id, state, %Job{}}`, indexed on
      `state` so the queue finds queued and running jobs without a scan. The
      job is stored whole, so adding a field to `DevstralElixir.Jobs.Job`
      needs no table migration (old records get the new field's default).
    * `:devstral_job_ids` - the id counter.

  Mnesia is one per node. `setup/2` starts it in the given directory, creating
  the disc schema and the tables when missing. A Mnesia that the application
  controller started at boot (in-memory, nothing but the schema) is restarted
  in the right place; one that holds other tables elsewhere is an error rather
  than something to stop under someone else's feet.

  The queue process is the only writer, so single-record writes need no
  cross-process coordination; they still run in transactions so a crash
  never leaves a half-updated counter.

  Durability: Mnesia commits to its transaction log asynchronously, so a BEAM
  killed right after a commit (`kill -9`, a halt) loses it. Every write here
  therefore ends with `:mnesia.sync_log/0` (flush and fsync), except the
  progress updates, which pass `sync: false`: losing the latest progress
  report is harmless, and they are frequent.
  """

  alias DevstralElixir.Jobs.Job

  @jobs :devstral_jobs
  @ids :devstral_job_ids
  # Position of `state` in the record tuple, for index reads.
  @state_pos 3

  @doc "The Mnesia directory for a data directory: `DATA_DIR/mnesia/<node>`."
  @spec mnesia_dir(Path.t()) :: Path.t()
  def mnesia_dir(data_dir),
    do: Path.join([Path.expand(data_dir), "mnesia", Atom.to_string(node())])

  @doc "The table names, e.g. for `:mnesia.wait_for_tables/2`."
  @spec tables() :: [atom()]
  def tables, do: [@jobs, @ids]

  @doc """
  Starts Mnesia in `dir` (creating the schema there when missing), creates the
  tables when missing and waits up to `timeout` ms for them to load.
  """
  @spec setup(Path.t(), timeout()) :: :ok | {:error, String.t()}
  def setup(dir, timeout \\ 30_000) do
    dir = Path.expand(dir)

    with :ok <- mkdir(dir),
         :ok <- ensure_running_in(dir),
         :ok <- ensure_disc_schema(),
         :ok <- ensure_table(@jobs, attributes: [:id, :state, :job], index: [:state]),
         :ok <- ensure_table(@ids, attributes: [:key, :value]) do
      wait(timeout)
    end
  end

  @doc "Stores a new job under a fresh id and returns it."
  @spec insert(Job.t()) :: {:ok, Job.t()} | {:error, String.t()}
  def insert(%Job{} = job) do
    transaction(fn ->
      id =
        case :mnesia.read(@ids, :job, :write) do
          [{@ids, :job, last}] -> last + 1
          [] -> 1
        end

      :ok = :mnesia.write({@ids, :job, id})
      job = %{job | id: id}
      :ok = :mnesia.write(record(job))
      job
    end)
    |> synced(true)
  end

  @doc """
  Writes a job (which must have an id). With `sync: false` the write is not
  forced to disk before returning.
  """
  @spec put(Job.t(), keyword()) :: {:ok, Job.t()} | {:error, String.t()}
  def put(%Job{id: id} = job, opts \\ []) when is_integer(id) do
    opts = Keyword.validate!(opts, sync: true)

    transaction(fn ->
      :ok = :mnesia.write(record(job))
      job
    end)
    |> synced(opts[:sync])
  end

  @doc "Writes several jobs in one transaction."
  @spec put_all([Job.t()]) :: :ok | {:error, String.t()}
  def put_all(jobs) do
    with {:ok, _} <-
           transaction(fn -> Enum.each(jobs, &(:ok = :mnesia.write(record(&1)))) end)
           |> synced(true),
         do: :ok
  end

  @doc "A job by id."
  @spec fetch(Job.id()) :: {:ok, Job.t()} | :error
  def fetch(id) do
    case :mnesia.dirty_read(@jobs, id) do
      [{@jobs, ^id, _state, job}] -> {:ok, upgrade(job)}
      [] -> :error
    end
  end

  @doc "The jobs in one state, in id order."
  @spec by_state(Job.state()) :: [Job.t()]
  def by_state(state) do
    @jobs
    |> :mnesia.dirty_index_read(state, @state_pos)
    |> Enum.map(fn {@jobs, _id, _state, job} -> upgrade(job) end)
    |> Enum.sort_by(& &1.id)
  end

  @doc "Every job, in id order."
  @spec all() :: [Job.t()]
  def all do
    @jobs
    |> :mnesia.dirty_select([{{@jobs, :_, :_, :"$1"}, [], [:"$1"]}])
    |> Enum.map(&upgrade/1)
    |> Enum.sort_by(& &1.id)
  end

  @doc "The number of stored jobs."
  @spec count() :: non_neg_integer()
  def count, do: :mnesia.table_info(@jobs, :size)

  defp record(%Job{} = job), do: {@jobs, job.id, job.state, job}

  # Records written by an older Job struct get the new fields' defaults.
  defp upgrade(%Job{} = job), do: struct(Job, Map.from_struct(job))

  defp synced({:ok, _} = ok, true) do
    case :mnesia.sync_log() do
      :ok -> ok
      {:error, reason} -> {:error, "Mnesia could not sync its log to disk: #{inspect(reason)}"}
    end
  end

  defp synced(result, _sync?), do: result

  defp transaction(fun) do
    case :mnesia.transaction(fun) do
      {:atomic, result} -> {:ok, result}
      {:aborted, reason} -> {:error, "Mnesia transaction aborted: #{inspect(reason)}"}
    end
  end

  defp mkdir(dir) do
    case File.mkdir_p(dir) do
      :ok -> :ok
      {:error, reason} -> {:error, "cannot create #{dir}: #{:file.format_error(reason)}"}
    end
  end

  defp ensure_running_in(dir) do
    if :mnesia.system_info(:is_running) == :yes do
      current = :mnesia.system_info(:directory) |> to_string() |> Path.expand()

      cond do
        current == dir ->
          :ok

        boot_default?() ->
          :stopped = :mnesia.stop()
          start_in(dir)

        true ->
          {:error,
           "Mnesia is already running in #{current} with tables " <>
             "#{inspect(:mnesia.system_info(:tables))}; the job queue needs #{dir}"}
      end
    else
      start_in(dir)
    end
  end

  # The Mnesia that `extra_applications` starts at boot: no directory in use
  # and nothing but the in-memory schema.
  defp boot_default? do
    :mnesia.system_info(:tables) == [:schema] and
      :mnesia.table_info(:schema, :storage_type) == :ram_copies
  end

  defp start_in(dir) do
    _ = Application.load(:mnesia)
    :ok = Application.put_env(:mnesia, :dir, String.to_charlist(dir))

    with :ok <- create_schema(dir) do
      case :mnesia.start() do
        :ok -> :ok
        {:error, reason} -> {:error, "Mnesia did not start in #{dir}: #{inspect(reason)}"}
      end
    end
  end

  defp create_schema(dir) do
    node = node()

    case :mnesia.create_schema([node]) do
      :ok ->
        :ok

      {:error, {_, {:already_exists, ^node}}} ->
        :ok

      {:error, reason} ->
        {:error, "cannot create the Mnesia schema in #{dir}: #{inspect(reason)}"}
    end
  end

  defp ensure_disc_schema do
    case :mnesia.table_info(:schema, :storage_type) do
      :disc_copies ->
        :ok

      _ram ->
        case :mnesia.change_table_copy_type(:schema, node(), :disc_copies) do
          {:atomic, :ok} ->
            :ok

          {:aborted, reason} ->
            {:error, "cannot put the Mnesia schema on disc: #{inspect(reason)}"}
        end
    end
  end

  @doc """
  Creates a `disc_copies` table on this node unless it exists (`opts` as
  `:mnesia.create_table/2` takes them). Other Mnesia stores of the host (the
  web UI's conversations) create their tables with it once `setup/2` ran.
  """
  @spec ensure_table(atom(), keyword()) :: :ok | {:error, String.t()}
  def ensure_table(name, opts) do
    case :mnesia.create_table(name, [disc_copies: [node()]] ++ opts) do
      {:atomic, :ok} -> :ok
      {:aborted, {:already_exists, ^name}} -> :ok
      {:aborted, reason} -> {:error, "cannot create Mnesia table #{name}: #{inspect(reason)}"}
    end
  end

  defp wait(timeout) do
    case :mnesia.wait_for_tables(tables(), timeout) do
      :ok ->
        :ok

      {:timeout, missing} ->
        {:error, "Mnesia tables #{inspect(missing)} did not load within #{timeout} ms"}

      {:error, reason} ->
        {:error, "waiting for Mnesia tables failed: #{inspect(reason)}"}
    end
  end
end
