defmodule DevstralElixir.Jobs.Events do
  @moduledoc """
  Job events for the UI and the CLI, over a duplicate-key `Registry`.

  A subscriber receives `{DevstralElixir.Jobs.Events, job_id, event}` where
  `event` is

    * `{:progress, map}` - a progress report from the job's runner;
    * `{:state, %DevstralElixir.Jobs.Job{}}` - the job after a state change
      (enqueued, started, retried, succeeded, failed, cancelled).

  Subscribe to one job id or to `:all`. Add `child_spec/1` to a supervision
  tree (default name `DevstralElixir.Jobs.Events`); every function takes the
  registry name so tests can run their own.
  """

  @type event :: {:progress, map()} | {:state, DevstralElixir.Jobs.Job.t()}

  @doc "A child spec for the registry (`name:` defaults to this module)."
  @spec child_spec(keyword()) :: Supervisor.child_spec()
  def child_spec(opts) do
    opts = Keyword.validate!(opts, name: __MODULE__)
    Registry.child_spec(keys: :duplicate, name: opts[:name])
  end

  @doc "Subscribes the calling process to one job's events, or to every job's with `:all`."
  @spec subscribe(DevstralElixir.Jobs.Job.id() | :all, atom()) :: :ok
  def subscribe(job_id_or_all, registry \\ __MODULE__) do
    {:ok, _owner} = Registry.register(registry, job_id_or_all, nil)
    :ok
  end

  @doc "Undoes `subscribe/2`."
  @spec unsubscribe(DevstralElixir.Jobs.Job.id() | :all, atom()) :: :ok
  def unsubscribe(job_id_or_all, registry \\ __MODULE__) do
    Registry.unregister(registry, job_id_or_all)
  end

  @doc "Sends an event to the job's subscribers and to the `:all` subscribers."
  @spec publish(atom(), DevstralElixir.Jobs.Job.id(), event()) :: :ok
  def publish(registry \\ __MODULE__, job_id, event) do
    message = {__MODULE__, job_id, event}

    for key <- [job_id, :all] do
      Registry.dispatch(registry, key, fn entries ->
        for {pid, _value} <- entries, do: send(pid, message)
      end)
    end

    :ok
  end
end
