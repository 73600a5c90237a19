defmodule DevstralElixir.Jobs.Queue do
  @moduledoc """
  The durable job queue: jobs live in Mnesia `disc_copies` tables under
  `DATA_DIR/mnesia/<node>` (see `DevstralElixir.Jobs.Store`), so they survive
  crashes and restarts.

  The queue process only dispatches. Each attempt runs its type's runner
  (`DevstralElixir.Jobs.Runner`) under `Task.Supervisor.async_nolink/2`,
  tracked by its monitor ref; the task's result or `:DOWN` reason becomes the
  job's next state:

    * `{:ok, result}` - `:succeeded`;
    * `{:error, reason}`, a raise, a throw or an abnormal exit - the attempt
      failed: back to `:queued` with exponential backoff (`backoff_ms/3`), or
      `:failed` once `max_attempts` attempts have run;
    * `{:discard, reason}` - `:failed` at once.

  `max_attempts` counts attempts per unit of work: a runner announcing a new
  unit (`report.({:unit, name})`, see `DevstralElixir.Jobs.Runner`) starts
  the job's `attempts` again at 1, while `total_attempts` keeps counting.

  Dispatch picks ready jobs by priority (0 first), then schedule time, then
  id, within a global `limit` of concurrent jobs and a per-resource limit
  (`resource_limits`, default 1 per named resource: one training job per
  worker at a time).

  Cancelling a queued job marks it `:cancelled`; cancelling a running one also
  calls the runner's `cancel/1` (in its own task) and kills the attempt's task.

  On start (in `handle_continue/2`) the queue takes the Mnesia directory's lock
  (`DevstralElixir.Jobs.Lock`: two BEAMs never open one directory), starts
  Mnesia there, and re-queues the jobs a previous run left `:running`: a host
  restart is not the job's fault, so that attempt is not counted.

  Events go to `DevstralElixir.Jobs.Events` subscribers: progress from the
  runner's `report` function and the job after every state change.

  ## Options (`start_link/1`)

    * `:name` - registered name (default `DevstralElixir.Jobs.Queue`; nil for none)
    * `:data_dir` - default `DevstralElixir.Config.data_dir/0` (`DATA_DIR`)
    * `:task_supervisor` - default `DevstralElixir.TaskSupervisor`
    * `:events` - the events registry, default `DevstralElixir.Jobs.Events`
    * `:runners` - `%{type => module}`, the runner of each job type (see
      `DevstralElixir.Jobs.Runner`), merged over the `:job_runners`
      application environment; the application passes
      `DevstralElixir.Application.job_runners/0`. A job type without a
      runner is refused at enqueue
    * `:limit` - jobs running at once, default 4
    * `:resource_limits` - `%{resource => n}`; unlisted resources allow 1
    * `:max_attempts` - default for jobs that do not set it, 3
    * `:backoff_base_ms`, `:backoff_max_ms` - retry delays, 1 s doubling up to 10 min
    * `:setup_timeout` - how long to wait for the tables to load, 30 s
  """

  use GenServer
  require Logger

  alias DevstralElixir.Jobs.{Events, Job, Lock, Store}

  # Marks a task process as running a job's attempt (see orphaned_task?/1).
  @task_key :devstral_job_id

  @enqueue_opts [:priority, :max_attempts, :resource, :parent_id, :scheduled_at]

  @type server :: GenServer.server()
  @type enqueue_opt ::
          {:priority, 0..9}
          | {:max_attempts, pos_integer()}
          | {:resource, String.t() | nil}
          | {:parent_id, Job.id() | nil}
          | {:scheduled_at, DateTime.t()}

  defstruct [
    :name,
    :data_dir,
    :mnesia_dir,
    :task_supervisor,
    :events,
    :runners,
    :limit,
    :resource_limits,
    :max_attempts,
    :backoff_base_ms,
    :backoff_max_ms,
    :setup_timeout,
    :timer,
    running: %{}
  ]

  @doc "Starts the queue; see the module doc for the options."
  @spec start_link(keyword()) :: GenServer.on_start()
  def start_link(opts \\ []) do
    opts =
      Keyword.validate!(opts,
        name: __MODULE__,
        data_dir: nil,
        task_supervisor: DevstralElixir.TaskSupervisor,
        events: Events,
        runners: %{},
        limit: 4,
        resource_limits: %{},
        max_attempts: 3,
        backoff_base_ms: 1_000,
        backoff_max_ms: 600_000,
        setup_timeout: 30_000
      )

    check_start_opts!(opts)
    gen_opts = if opts[:name], do: [name: opts[:name]], else: []
    GenServer.start_link(__MODULE__, opts, gen_opts)
  end

  @doc """
  Enqueues a job of `type` (an atom or its name) with `args`; a type without
  a registered runner is refused with a message listing those that have one. Options:
  `:priority` (0..9, default 0, lower runs first), `:max_attempts`,
  `:resource` (default: the runner's `resource/1`), `:parent_id`,
  `:scheduled_at`. The runner's `validate_args/1`, when it has one, runs in
  the caller first. Returns the stored job.
  """
  @spec enqueue(server(), Job.type() | String.t(), map(), [enqueue_opt()]) ::
          {:ok, Job.t()} | {:error, String.t()}
  def enqueue(server, type, args, opts \\ []) do
    opts = Keyword.validate!(opts, @enqueue_opts)

    with {:ok, type, runner} <- GenServer.call(server, {:runner, type}),
         :ok <- check_args(args),
         :ok <- check_enqueue_opts(opts),
         :ok <- validate_args(runner, args) do
      opts = Keyword.put_new_lazy(opts, :resource, fn -> default_resource(runner, args) end)
      GenServer.call(server, {:enqueue, type, args, opts})
    end
  end

  @doc "A job by id."
  @spec get(server(), Job.id()) :: {:ok, Job.t()} | {:error, :not_found}
  def get(server, id), do: GenServer.call(server, {:get, id})

  @doc """
  Jobs, newest first. Options: `:state`, `:type` (filters) and `:limit`
  (default 100).
  """
  @spec list(server(), keyword()) :: [Job.t()]
  def list(server, opts \\ []) do
    opts = Keyword.validate!(opts, state: nil, type: nil, limit: 100)
    GenServer.call(server, {:list, opts})
  end

  @doc """
  Cancels a queued or running job. A job that already ended gives
  `{:error, {:final, state}}`.
  """
  @spec cancel(server(), Job.id()) ::
          {:ok, Job.t()} | {:error, :not_found | {:final, Job.state()}}
  def cancel(server, id), do: GenServer.call(server, {:cancel, id})

  @doc """
  `:ok` when this BEAM may open the Mnesia directory of `data_dir`, or
  `{:error, message}` naming the BEAM that holds it. Takes nothing; for tools
  that want a clear message before starting the application.
  """
  @spec check_lock(Path.t()) :: :ok | {:error, String.t()}
  def check_lock(data_dir), do: data_dir |> Store.mnesia_dir() |> Lock.check()

  @doc """
  The delay before retry number `attempt` (1 for the first retry): `base_ms`
  doubled per attempt, at most `max_ms`.
  """
  @spec backoff_ms(pos_integer(), non_neg_integer(), non_neg_integer()) :: non_neg_integer()
  def backoff_ms(attempt, base_ms, max_ms) when attempt >= 1 do
    # Cap the exponent first so huge attempt counts cannot build huge integers.
    min(max_ms, base_ms * Integer.pow(2, min(attempt - 1, 40)))
  end

  # Callbacks

  @impl true
  def init(opts) do
    Process.flag(:trap_exit, true)
    data_dir = Path.expand(opts[:data_dir] || DevstralElixir.Config.data_dir())

    # The queue knows no job types of its own: whoever starts it registers them.
    runners = Map.merge(Application.get_env(:devstral_elixir, :job_runners, %{}), opts[:runners])

    state = %__MODULE__{
      name: opts[:name],
      data_dir: data_dir,
      mnesia_dir: Store.mnesia_dir(data_dir),
      task_supervisor: opts[:task_supervisor],
      events: opts[:events],
      runners: runners,
      limit: opts[:limit],
      resource_limits: opts[:resource_limits],
      max_attempts: opts[:max_attempts],
      backoff_base_ms: opts[:backoff_base_ms],
      backoff_max_ms: opts[:backoff_max_ms],
      setup_timeout: opts[:setup_timeout]
    }

    {:ok, state, {:continue, :setup}}
  end

  @impl true
  def handle_continue(:setup, state) do
    with :ok <- Lock.acquire(state.mnesia_dir),
         :ok <- Store.setup(state.mnesia_dir, state.setup_timeout),
         :ok <- recover() do
      {:noreply, dispatch(state)}
    else
      {:error, message} ->
        Logger.error("job queue cannot start: #{message}")
        {:stop, {:setup_failed, message}, state}
    end
  end

  @impl true
  def handle_call({:runner, name}, _from, state) do
    reply =
      with {:ok, type} <- Job.parse_type(name),
           true <- Map.has_key?(state.runners, type),
           {:ok, runner} <- runner_for(state, type) do
        {:ok, type, runner}
      else
        {:error, _message} = error -> error
        _unknown -> {:error, "type must be one of #{known_types(state)}, got #{inspect(name)}"}
      end

    {:reply, reply, state}
  end

  def handle_call({:enqueue, type, args, opts}, _from, state) do
    now = now()

    job = %Job{
      type: type,
      args: args,
      state: :queued,
      priority: Keyword.get(opts, :priority, 0),
      max_attempts: Keyword.get(opts, :max_attempts, state.max_attempts),
      resource: Keyword.get(opts, :resource),
      parent_id: Keyword.get(opts, :parent_id),
      scheduled_at: Keyword.get(opts, :scheduled_at, now),
      inserted_at: now,
      updated_at: now
    }

    case Store.insert(job) do
      {:ok, job} ->
        publish_state(state, job)
        state = dispatch(state)
        {:ok, job} = Store.fetch(job.id)
        {:reply, {:ok, job}, state}

      {:error, _message} = error ->
        {:reply, error, state}
    end
  end

  def handle_call({:unit, id, unit}, _from, state) do
    with {:ok, %Job{state: :running} = job} <- Store.fetch(id),
         true <- job.unit != unit do
      # The first unit a job names is the one its attempts already count.
      attempts = if job.unit == nil, do: job.attempts, else: 1
      {:ok, job} = Store.put(%{job | unit: unit, attempts: attempts, updated_at: now()})
      publish_state(state, job)
    end

    {:reply, :ok, state}
  end

  def handle_call({:get, id}, _from, state) do
    reply =
      case Store.fetch(id) do
        {:ok, job} -> {:ok, job}
        :error -> {:error, :not_found}
      end

    {:reply, reply, state}
  end

  def handle_call({:list, opts}, _from, state) do
    jobs = if opts[:state], do: Store.by_state(opts[:state]), else: Store.all()

    jobs =
      jobs
      |> Enum.filter(&(opts[:type] == nil or &1.type == opts[:type]))
      |> Enum.reverse()
      |> Enum.take(opts[:limit])

    {:reply, jobs, state}
  end

  def handle_call({:cancel, id}, _from, state) do
    case Store.fetch(id) do
      :error ->
        {:reply, {:error, :not_found}, state}

      {:ok, %Job{state: job_state}} when job_state in [:succeeded, :failed, :cancelled] ->
        {:reply, {:error, {:final, job_state}}, state}

      {:ok, job} ->
        state = stop_attempt(state, job)
        now = now()
        job = %{job | state: :cancelled, pid: nil, finished_at: now, updated_at: now}
        {:ok, job} = Store.put(job)
        publish_state(state, job)
        {:reply, {:ok, job}, dispatch(state)}
    end
  end

  @impl true
  def handle_cast({:progress, id, progress}, state) do
    with {:ok, %Job{state: :running} = job} <- Store.fetch(id) do
      {:ok, _job} = Store.put(%{job | progress: progress, updated_at: now()}, sync: false)
    end

    {:noreply, state}
  end

  @impl true
  def handle_info({ref, outcome}, state) when is_map_key(state.running, ref) do
    Process.demonitor(ref, [:flush])
    {entry, running} = Map.pop(state.running, ref)
    state = %{state | running: running}
    {:noreply, state |> finish(entry, outcome) |> dispatch()}
  end

  def handle_info({:DOWN, ref, :process, _pid, reason}, state)
      when is_map_key(state.running, ref) do
    {entry, running} = Map.pop(state.running, ref)
    state = %{state | running: running}
    outcome = {:error, "the job's task exited: #{Exception.format_exit(reason)}"}
    {:noreply, state |> finish(entry, outcome) |> dispatch()}
  end

  def handle_info(:dispatch, state) do
    {:noreply, dispatch(%{state | timer: nil})}
  end

  def handle_info(message, state) do
    Logger.debug("job queue ignored #{inspect(message)}")
    {:noreply, state}
  end

  @impl true
  def terminate(_reason, state) do
    # The jobs stay :running in Mnesia; the next start re-queues them. Their
    # tasks must not outlive the queue, or a restarted queue would run them twice.
    for {_ref, entry} <- state.running, do: Process.exit(entry.pid, :kill)
    :ok
  end

  # Dispatch

  defp dispatch(state) do
    if state.limit - map_size(state.running) <= 0 do
      state
    else
      now = now()

      {ready, waiting} =
        Enum.split_with(Store.by_state(:queued), &(DateTime.compare(&1.scheduled_at, now) != :gt))

      ready
      |> Enum.sort_by(&{&1.priority, DateTime.to_unix(&1.scheduled_at, :microsecond), &1.id})
      |> Enum.reduce(state, &maybe_start/2)
      |> schedule_wakeup(waiting, now)
    end
  end

  defp maybe_start(job, state) do
    cond do
      map_size(state.running) >= state.limit -> state
      not resource_free?(state, job.resource) -> state
      true -> start(state, job)
    end
  end

  defp resource_free?(_state, nil), do: true

  defp resource_free?(state, resource) do
    busy = Enum.count(state.running, fn {_ref, entry} -> entry.resource == resource end)
    busy < Map.get(state.resource_limits, resource, 1)
  end

  defp start(state, job) do
    case runner_for(state, job.type) do
      {:ok, runner} ->
        now = now()

        job = %{
          job
          | state: :running,
            attempts: job.attempts + 1,
            total_attempts: job.total_attempts + 1,
            started_at: now,
            updated_at: now,
            finished_at: nil
        }

        report = reporter(self(), state.events, job.id)

        task =
          Task.Supervisor.async_nolink(state.task_supervisor, fn -> run(runner, job, report) end)

        {:ok, job} = Store.put(%{job | pid: task.pid})
        publish_state(state, job)
        entry = %{id: job.id, pid: task.pid, resource: job.resource, runner: runner}
        %{state | running: Map.put(state.running, task.ref, entry)}

      {:error, message} ->
        # The runner was unregistered since the job was enqueued.
        fail_now(state, job, message)
    end
  end

  # Runs in the task. Raises and throws become errors here, with a readable
  # message; exits (a kill, a linked process dying) arrive as :DOWN instead.
  defp run(runner, job, report) do
    Process.put(@task_key, job.id)
    runner.run(job, report)
  rescue
    exception -> {:error, Exception.format_banner(:error, exception, __STACKTRACE__)}
  catch
    :throw, value -> {:error, "uncaught throw: #{inspect(value)}"}
  end

  defp reporter(queue, events, id) do
    fn
      progress when is_map(progress) ->
        Events.publish(events, id, {:progress, progress})
        GenServer.cast(queue, {:progress, id, progress})
        :ok

      # A call, not a cast: the reset is stored before the unit's work can fail.
      {:unit, unit} when is_binary(unit) ->
        GenServer.call(queue, {:unit, id, unit}, :infinity)
    end
  end

  defp schedule_wakeup(state, [], _now), do: state

  defp schedule_wakeup(state, waiting, now) do
    if state.timer, do: Process.cancel_timer(state.timer)
    next = Enum.min_by(waiting, &DateTime.to_unix(&1.scheduled_at, :microsecond))
    delay_us = DateTime.diff(next.scheduled_at, now, :microsecond)
    delay_ms = max(div(delay_us + 999, 1000), 1)
    %{state | timer: Process.send_after(self(), :dispatch, delay_ms)}
  end

  # Outcomes

  defp finish(state, %{cancelled: true}, _outcome), do: state

  defp finish(state, entry, outcome) do
    case Store.fetch(entry.id) do
      {:ok, %Job{state: :running} = job} -> record_outcome(state, job, outcome)
      _gone_or_moved_on -> state
    end
  end

  defp record_outcome(state, job, {:ok, result}) do
    now = now()
    job = %{job | state: :succeeded, result: result, pid: nil, finished_at: now, updated_at: now}
    {:ok, job} = Store.put(job)
    publish_state(state, job)
    state
  end

  defp record_outcome(state, job, {:discard, reason}), do: fail_now(state, job, describe(reason))

  defp record_outcome(state, job, {:error, reason}) do
    if job.attempts >= job.max_attempts do
      fail_now(state, job, describe(reason))
    else
      now = now()
      delay = backoff_ms(job.attempts, state.backoff_base_ms, state.backoff_max_ms)

      job = %{
        job
        | state: :queued,
          error: describe(reason),
          pid: nil,
          scheduled_at: DateTime.add(now, delay, :millisecond),
          updated_at: now
      }

      {:ok, job} = Store.put(job)
      publish_state(state, job)
      state
    end
  end

  defp record_outcome(state, job, other) do
    message =
      "runner #{inspect(state.runners[job.type])} returned #{inspect(other)}, " <>
        "not {:ok, _}, {:error, _} or {:discard, _}"

    record_outcome(state, job, {:error, message})
  end

  defp fail_now(state, job, message) do
    now = now()
    job = %{job | state: :failed, error: message, pid: nil, finished_at: now, updated_at: now}
    {:ok, job} = Store.put(job)
    publish_state(state, job)
    state
  end

  defp stop_attempt(state, %Job{state: :running, id: id} = job) do
    case Enum.find(state.running, fn {_ref, entry} -> entry.id == id end) do
      {ref, entry} ->
        if function_exported?(entry.runner, :cancel, 1) do
          Task.Supervisor.start_child(state.task_supervisor, fn -> entry.runner.cancel(job) end)
        end

        Process.exit(entry.pid, :kill)
        # Keep the entry (its resource stays taken) until the task is really gone.
        %{state | running: Map.put(state.running, ref, Map.put(entry, :cancelled, true))}

      nil ->
        state
    end
  end

  defp stop_attempt(state, _queued_job), do: state

  # Jobs left :running by a previous run of the queue (a host restart, a crash).
  defp recover do
    now = now()

    jobs =
      for job <- Store.by_state(:running) do
        if orphaned_task?(job), do: Process.exit(job.pid, :kill)

        %{
          job
          | state: :queued,
            attempts: max(job.attempts - 1, 0),
            total_attempts: max(job.total_attempts - 1, 0),
            pid: nil,
            scheduled_at: now,
            updated_at: now,
            error: "attempt #{job.attempts} was interrupted by a restart of the queue; re-queued"
        }
      end

    if jobs != [], do: Logger.info("job queue re-queued #{length(jobs)} interrupted job(s)")
    Store.put_all(jobs)
  end

  # A pid read back from Mnesia may name an unrelated process of this BEAM
  # (a non-distributed node reuses pid numbers across restarts), so only a
  # process that says it runs this job is killed.
  defp orphaned_task?(%Job{pid: pid, id: id}) when is_pid(pid) and node(pid) == node() do
    case Process.info(pid, :dictionary) do
      {:dictionary, dict} -> List.keyfind(dict, @task_key, 0) == {@task_key, id}
      nil -> false
    end
  end

  defp orphaned_task?(_job), do: false

  # Helpers

  defp publish_state(state, job), do: Events.publish(state.events, job.id, {:state, job})

  defp runner_for(state, type) do
    case Map.fetch(state.runners, type) do
      {:ok, runner} ->
        if Code.ensure_loaded?(runner) and function_exported?(runner, :run, 2),
          do: {:ok, runner},
          else: {:error, "the runner #{inspect(runner)} for #{type} jobs is not available"}

      :error ->
        {:error, "no runner is registered for #{type} jobs (registered: #{known_types(state)})"}
    end
  end

  defp known_types(state), do: state.runners |> Map.keys() |> Enum.sort() |> Enum.join(", ")

  defp validate_args(runner, args) do
    if function_exported?(runner, :validate_args, 1), do: runner.validate_args(args), else: :ok
  end

  defp default_resource(runner, args) do
    if function_exported?(runner, :resource, 1), do: runner.resource(args), else: nil
  end

  defp check_args(args) when is_map(args), do: :ok
  defp check_args(args), do: {:error, "args must be a map (a JSON object), got #{inspect(args)}"}

  defp check_enqueue_opts(opts) do
    Enum.find_value(opts, :ok, fn
      {:priority, p} when p in 0..9 -> nil
      {:priority, p} -> {:error, "priority must be an integer from 0 to 9, got #{inspect(p)}"}
      {:max_attempts, n} when is_integer(n) and n > 0 -> nil
      {:max_attempts, n} -> {:error, "max_attempts must be a positive integer, got #{inspect(n)}"}
      {:resource, r} when is_binary(r) or is_nil(r) -> nil
      {:resource, r} -> {:error, "resource must be a string, got #{inspect(r)}"}
      {:parent_id, id} when is_integer(id) or is_nil(id) -> nil
      {:parent_id, id} -> {:error, "parent_id must be a job id, got #{inspect(id)}"}
      {:scheduled_at, %DateTime{}} -> nil
      {:scheduled_at, t} -> {:error, "scheduled_at must be a DateTime, got #{inspect(t)}"}
    end)
  end

  defp check_start_opts!(opts) do
    checks = [
      limit: &(is_integer(&1) and &1 >= 0),
      max_attempts: &(is_integer(&1) and &1 > 0),
      backoff_base_ms: &(is_integer(&1) and &1 >= 0),
      backoff_max_ms: &(is_integer(&1) and &1 >= 0),
      setup_timeout: &(is_integer(&1) and &1 > 0),
      runners: &valid_runners?/1,
      resource_limits:
        &(is_map(&1) and Enum.all?(&1, fn {k, v} -> is_binary(k) and is_integer(v) and v >= 0 end))
    ]

    for {key, valid?} <- checks, not valid?.(opts[key]) do
      raise ArgumentError,
            "invalid #{inspect(key)} option for #{inspect(__MODULE__)}: " <>
              inspect(opts[key])
    end

    :ok
  end

  defp valid_runners?(runners) do
    is_map(runners) and
      Enum.all?(runners, fn {type, mod} -> type in Job.types() and is_atom(mod) end)
  end

  defp describe(reason) when is_binary(reason), do: reason
  defp describe(%{__exception__: true} = exception), do: Exception.message(exception)
  defp describe(reason), do: inspect(reason)

  defp now, do: DateTime.utc_now()
end
