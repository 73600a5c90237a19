defmodule DevstralElixir.Worker do
  @moduledoc """
  Owns one Python worker OS process and speaks `proto/worker.proto` to it over
  an Erlang Port.

  The port runs `python -m python_worker port` with `:nouse_stdio`, so frames
  travel on fds 3/4 (`{:packet, 4}`, each a `PortFrame`) while the child's
  stdout and stderr stay free for library noise and logs.

  This process only routes frames. Callers encode their own requests and decode
  their own responses (`open/4`, `await/2`), so a busy stream never makes the
  coordinator do per-token work beyond one small envelope decode.

  Supervision, after Elixir's "Zombie OS processes" advice:
    * exits are trapped; `exit_status` and `{:EXIT, port, _}` both end every
      in-flight call with an `:unavailable` error at once, then the worker is
      restarted with exponential backoff;
    * a caller that dies gets its calls cancelled (a CANCEL frame);
    * on shutdown the child gets SIGTERM, then SIGKILL after `:grace_ms`. The
      child also exits by itself when fd 3 reaches EOF, which covers the VM
      being killed outright.

  Readiness: the worker answers `Health` at once with state `:STARTING` while
  it loads its model; this process polls it until `:READY`. If the default
  model cannot be loaded the worker reports `:FAILED` and a `reason`: the status
  becomes `:failed` with that reason (shown on `/health` and in 503 errors).
  Either way polling goes on slowly (`:refresh_ms`), because a gRPC client can
  load another model into the same worker and the host must serve what is
  really loaded.
  """
  use GenServer
  require Logger

  alias DevstralElixir.Proto.{GenerateResponse, HealthRequest, HealthResponse, PortFrame}
  alias DevstralElixir.Proto.Worker.Service
  alias DevstralElixir.Worker.{Error, Status}

  defstruct [
    :opts,
    :port,
    :os_pid,
    :model,
    :health_call,
    :failure,
    waiters: [],
    status: :down,
    calls: %{},
    failures: 0
  ]

  @type status :: :starting | :ready | :failed | :down
  @type info :: %{
          status: status(),
          model: struct() | nil,
          os_pid: non_neg_integer() | nil,
          failure: String.t() | nil,
          generations_in_flight: non_neg_integer()
        }
  @type call_ref :: {pid(), pos_integer()}
  @type event :: {:item, struct()} | :end | {:error, Error.t()}

  @options [
    name: __MODULE__,
    python: nil,
    args: [],
    env: %{},
    cd: nil,
    grace_ms: 5_000,
    health_interval_ms: 100,
    refresh_ms: 2_000,
    min_backoff_ms: 200,
    max_backoff_ms: 15_000
  ]

  # Public API

  @doc """
  Starts the worker supervisor process. Options:

    * `:name` - registered name (default `DevstralElixir.Worker`; `nil` for none)
    * `:python` - the interpreter (required)
    * `:args` - extra arguments after `-m python_worker port`
    * `:env` - environment for the child, a map of strings
    * `:cd` - working directory (the repository root, so `python_worker` imports)
    * `:grace_ms` - SIGTERM grace before SIGKILL on shutdown (5000)
    * `:health_interval_ms` - readiness poll interval (100)
    * `:refresh_ms` - poll interval once started, ready or failed (2000)
    * `:min_backoff_ms` / `:max_backoff_ms` - restart backoff bounds (200 / 15000)
  """
  @spec start_link(keyword()) :: GenServer.on_start()
  def start_link(opts) do
    opts = Keyword.validate!(opts, @options)

    unless is_binary(opts[:python]),
      do: raise(ArgumentError, ":python must be the path of a Python interpreter")

    case opts[:name] do
      nil -> GenServer.start_link(__MODULE__, opts)
      name -> GenServer.start_link(__MODULE__, opts, name: name)
    end
  end

  @doc "A child spec whose shutdown leaves room for the SIGTERM grace period."
  @spec child_spec(keyword()) :: Supervisor.child_spec()
  def child_spec(opts) do
    grace = Keyword.get(opts, :grace_ms, @options[:grace_ms])

    %{
      id: Keyword.get(opts, :name) || __MODULE__,
      start: {__MODULE__, :start_link, [opts]},
      shutdown: grace + 1_000
    }
  end

  @doc """
  The worker's status, the loaded model (a `ModelInfo` or nil), the OS pid and,
  when the status is `:failed`, why the default model could not be loaded.
  """
  @spec info(GenServer.server()) :: info()
  def info(server), do: GenServer.call(server, :info)

  @doc "Like `info/1`, but a worker supervisor that is not running reads as `:down`."
  @spec info_or_down(GenServer.server()) :: info()
  def info_or_down(server) do
    info(server)
  catch
    :exit, _ ->
      %{status: :down, model: nil, os_pid: nil, failure: nil, generations_in_flight: 0}
  end

  @doc """
  Waits until the worker has started, for callers such as queued jobs that
  would otherwise fail while it starts or restarts.

  Started means `:ready`, or `:failed`: a default model that cannot be loaded
  must not hold up jobs such as dataset builds or training, which name their
  own model; generation callers check `info/1` instead.
  """
  @spec await_ready(GenServer.server(), timeout()) :: :ok | {:error, Error.t()}
  def await_ready(server, timeout \\ 120_000) do
    GenServer.call(server, :await_ready, timeout)
  catch
    :exit, {:timeout, _} ->
      {:error,
       %Error{status: :unavailable, message: "the worker was not ready within #{timeout} ms"}}
  end

  @doc """
  Opens a call. Replies arrive as messages to the calling process; read them
  with `await/2`. Fails at once with `:unavailable` while the worker is down.
  """
  @spec open(GenServer.server(), String.t(), struct()) ::
          {:ok, call_ref()} | {:error, Error.t()}
  def open(server, method, request) do
    case Service.rpc(method) do
      %{input: request_module, output: response_module} ->
        unless is_struct(request, request_module) do
          raise ArgumentError,
                "#{method} takes a #{inspect(request_module)}, got #{inspect(request)}"
        end

        id = System.unique_integer([:positive, :monotonic])

        frame =
          PortFrame.encode(%PortFrame{
            call_id: id,
            method: method,
            kind: :REQUEST,
            payload: request_module.encode(request)
          })

        case GenServer.call(server, {:open, id, response_module, frame}) do
          {:ok, pid} -> {:ok, {pid, id}}
          {:error, _} = error -> error
        end

      nil ->
        raise ArgumentError, "unknown worker method #{inspect(method)}"
    end
  end

  @doc "Waits for the next event of a call opened with `open/3`."
  @spec await(call_ref(), timeout()) :: event()
  def await({_pid, id}, timeout \\ :infinity) do
    receive do
      {__MODULE__, ^id, event} -> decode_event(event)
    after
      timeout ->
        {:error, %Error{status: :deadline_exceeded, message: "no reply in #{timeout} ms"}}
    end
  end

  @doc """
  The next event of a call if it has already arrived, else `:empty`; never
  waits. Streaming callers use it to merge the items that are ready into one
  write downstream.
  """
  @spec poll(call_ref()) :: event() | :empty
  def poll({_pid, id}) do
    receive do
      {__MODULE__, ^id, event} -> decode_event(event)
    after
      0 -> :empty
    end
  end

  defp decode_event({:item, module, payload}) do
    case module.decode(payload) do
      {:ok, message} -> {:item, message}
      {:error, reason} -> {:error, %Error{status: :internal, message: "bad reply: #{reason}"}}
    end
  end

  defp decode_event(other), do: other

  @doc "Cancels an open call (a no-op once it has ended). Its pending replies are dropped."
  @spec cancel(call_ref()) :: :ok
  def cancel({pid, id}) do
    GenServer.cast(pid, {:cancel, id})
    flush(id)
  end

  @doc "A unary call: the single reply, or an error."
  @spec call(GenServer.server(), String.t(), struct(), timeout()) ::
          {:ok, struct()} | {:error, Error.t()}
  def call(server, method, request, timeout \\ 60_000) do
    with {:ok, ref} <- open(server, method, request) do
      case await(ref, timeout) do
        {:item, reply} ->
          _ = await(ref, timeout)
          {:ok, reply}

        :end ->
          {:error, %Error{status: :internal, message: "#{method} ended without a reply"}}

        {:error, _} = error ->
          cancel(ref)
          error
      end
    end
  end

  @doc """
  A streaming call as a lazy `Stream` of response messages. Raises
  `DevstralElixir.Worker.Error` when the call fails; halting the stream early
  cancels the call.
  """
  @spec stream(GenServer.server(), String.t(), struct()) :: Enumerable.t()
  def stream(server, method, request) do
    Stream.resource(
      fn ->
        case open(server, method, request) do
          {:ok, ref} -> ref
          {:error, error} -> raise error
        end
      end,
      fn
        :done ->
          {:halt, :done}

        ref ->
          case await(ref) do
            {:item, message} -> {[message], ref}
            :end -> {:halt, :done}
            {:error, error} -> raise error
          end
      end,
      fn
        :done -> :ok
        ref -> cancel(ref)
      end
    )
  end

  defp flush(id) do
    receive do
      {__MODULE__, ^id, _} -> flush(id)
    after
      0 -> :ok
    end
  end

  # Callbacks

  @impl true
  def init(opts) do
    Process.flag(:trap_exit, true)
    {:ok, %__MODULE__{opts: opts}, {:continue, :spawn}}
  end

  @impl true
  def handle_continue(:spawn, state), do: {:noreply, spawn_worker(state)}

  @impl true
  def handle_call(:info, _from, state) do
    info = %{
      status: state.status,
      model: state.model,
      os_pid: state.os_pid,
      failure: state.failure,
      # Generate calls open on the worker: a finished or cancelled one is
      # gone from here once its end (or the CANCEL frame) went through.
      generations_in_flight:
        Enum.count(state.calls, fn {_id, call} -> call.module == GenerateResponse end)
    }

    {:reply, info, state}
  end

  def handle_call(:await_ready, _from, %{status: status} = state)
      when status in [:ready, :failed],
      do: {:reply, :ok, state}

  def handle_call(:await_ready, from, state),
    do: {:noreply, %{state | waiters: [from | state.waiters]}}

  def handle_call({:open, _id, _module, _frame}, _from, %{port: nil} = state) do
    {:reply, {:error, %Error{status: :unavailable, message: "the worker is down"}}, state}
  end

  def handle_call({:open, id, module, frame}, {caller, _tag}, state) do
    Port.command(state.port, frame)
    monitor = Process.monitor(caller)
    calls = Map.put(state.calls, id, %{caller: caller, module: module, monitor: monitor})
    {:reply, {:ok, self()}, %{state | calls: calls}}
  end

  @impl true
  def handle_cast({:cancel, id}, state), do: {:noreply, cancel_call(state, id)}

  @impl true
  def handle_info({port, {:data, data}}, %{port: port} = state) do
    case PortFrame.decode(data) do
      {:ok, frame} ->
        {:noreply, route(state, frame)}

      {:error, reason} ->
        Logger.error("worker sent an undecodable frame: #{reason}")
        {:noreply, state}
    end
  end

  def handle_info({port, {:exit_status, code}}, %{port: port} = state) do
    {:noreply, worker_down(state, "the worker exited with status #{code}")}
  end

  def handle_info({:EXIT, port, reason}, %{port: port} = state) do
    {:noreply, worker_down(state, "the worker port closed: #{inspect(reason)}")}
  end

  def handle_info({:EXIT, _other, _reason}, state), do: {:noreply, state}

  def handle_info(:respawn, %{port: nil} = state), do: {:noreply, spawn_worker(state)}
  def handle_info(:respawn, state), do: {:noreply, state}

  def handle_info(:poll_health, %{port: nil} = state), do: {:noreply, state}

  def handle_info(:poll_health, state) do
    id = System.unique_integer([:positive, :monotonic])

    frame = %PortFrame{
      call_id: id,
      method: "Health",
      kind: :REQUEST,
      payload: HealthRequest.encode(%HealthRequest{})
    }

    Port.command(state.port, PortFrame.encode(frame))
    {:noreply, %{state | health_call: id}}
  end

  def handle_info({:DOWN, monitor, :process, _pid, _reason}, state) do
    case Enum.find(state.calls, fn {_id, call} -> call.monitor == monitor end) do
      {id, _call} -> {:noreply, cancel_call(state, id)}
      nil -> {:noreply, state}
    end
  end

  def handle_info(_message, state), do: {:noreply, state}

  @impl true
  def terminate(_reason, %{port: nil}), do: :ok

  def terminate(_reason, state) do
    fail_all(state, "the host is shutting down")
    stop_os_process(state.port, state.os_pid, state.opts[:grace_ms])
  end

  # Internals

  defp spawn_worker(state) do
    opts = state.opts

    env = Enum.map(opts[:env], fn {key, value} -> {to_charlist(key), to_charlist(value)} end)

    port_opts =
      [
        :binary,
        {:packet, 4},
        :nouse_stdio,
        :exit_status,
        args: ["-m", "python_worker", "port" | opts[:args]],
        env: env
      ] ++ if(opts[:cd], do: [cd: opts[:cd]], else: [])

    try do
      port = Port.open({:spawn_executable, opts[:python]}, port_opts)
      {:os_pid, os_pid} = Port.info(port, :os_pid)
      Logger.info("worker started (os pid #{os_pid})")
      send(self(), :poll_health)
      %{state | port: port, os_pid: os_pid, status: :starting, model: nil, failure: nil}
    rescue
      error ->
        Logger.error("could not start the worker: #{Exception.message(error)}")
        schedule_respawn(%{state | failures: state.failures + 1})
    end
  end

  defp route(state, %PortFrame{call_id: id} = frame) when id == state.health_call do
    handle_health(state, frame)
  end

  defp route(state, %PortFrame{call_id: id, kind: kind} = frame) do
    case Map.fetch(state.calls, id) do
      {:ok, call} ->
        case kind do
          :STREAM_ITEM ->
            send(call.caller, {__MODULE__, id, {:item, call.module, frame.payload}})
            state

          :END ->
            finish(state, id, call, :end)

          :ERROR ->
            error = %Error{status: Status.from_code(frame.status_code), message: frame.message}
            finish(state, id, call, {:error, error})

          other ->
            Logger.warning("unexpected #{inspect(other)} frame for call #{id}")
            state
        end

      :error ->
        # A call id of 0 answers a frame the worker could not read at all.
        if id == 0 and kind == :ERROR, do: Logger.error("worker: #{frame.message}")
        state
    end
  end

  defp finish(state, id, call, event) do
    Process.demonitor(call.monitor, [:flush])
    send(call.caller, {__MODULE__, id, event})
    %{state | calls: Map.delete(state.calls, id)}
  end

  defp handle_health(state, %PortFrame{kind: :STREAM_ITEM, payload: payload}) do
    case HealthResponse.decode(payload) do
      {:ok, %HealthResponse{state: :READY, model: model}} ->
        if state.status != :ready, do: Logger.info("worker ready: #{model && model.id}")
        started(state, status: :ready, model: model, failure: nil)

      {:ok, %HealthResponse{state: :FAILED, reason: reason}} ->
        # An empty reason would show as no error at all on /health.
        reason = if reason == "", do: "the worker gave no reason", else: reason

        if state.failure != reason,
          do: Logger.error("the worker's default model failed: #{reason}")

        started(state, status: :failed, failure: reason)

      {:ok, %HealthResponse{state: :STARTING}} ->
        Process.send_after(self(), :poll_health, state.opts[:health_interval_ms])
        state

      # UNSPECIFIED (a worker older than this contract) or a state newer than
      # this host: not started as far as we know; keep polling, slowly, and say so.
      {:ok, %HealthResponse{state: other}} ->
        Logger.warning("worker Health reported an unknown state #{inspect(other)}")
        Process.send_after(self(), :poll_health, state.opts[:refresh_ms])
        state

      {:error, reason} ->
        Logger.error("bad Health reply: #{reason}")
        state
    end
  end

  # END follows the health reply; ERROR means the worker could not answer.
  defp handle_health(state, %PortFrame{kind: :END}), do: %{state | health_call: nil}

  defp handle_health(state, %PortFrame{kind: :ERROR, message: message}) do
    Logger.warning("worker Health failed: #{message}")
    Process.send_after(self(), :poll_health, state.opts[:health_interval_ms])
    %{state | health_call: nil}
  end

  defp handle_health(state, _frame), do: state

  # Ready or failed, the worker has started: `await_ready/2` callers go on, and
  # polling slows to `:refresh_ms` to follow models loaded by other clients.
  defp started(state, changes) do
    Process.send_after(self(), :poll_health, state.opts[:refresh_ms])
    for waiter <- state.waiters, do: GenServer.reply(waiter, :ok)
    struct!(state, [waiters: [], failures: 0] ++ changes)
  end

  defp cancel_call(state, id) do
    case Map.pop(state.calls, id) do
      {nil, _} ->
        state

      {call, calls} ->
        Process.demonitor(call.monitor, [:flush])

        if state.port do
          Port.command(state.port, PortFrame.encode(%PortFrame{call_id: id, kind: :CANCEL}))
        end

        %{state | calls: calls}
    end
  end

  defp worker_down(state, why) do
    Logger.error("#{why}; restarting")
    fail_all(state, why)
    # The port is already closed on exit_status; make sure the OS process is gone too.
    if state.os_pid,
      do: System.cmd("kill", ["-KILL", to_string(state.os_pid)], stderr_to_stdout: true)

    schedule_respawn(%{
      state
      | port: nil,
        os_pid: nil,
        status: :down,
        model: nil,
        failure: nil,
        health_call: nil,
        calls: %{},
        failures: state.failures + 1
    })
  end

  defp fail_all(state, why) do
    for {id, call} <- state.calls do
      Process.demonitor(call.monitor, [:flush])
      send(call.caller, {__MODULE__, id, {:error, %Error{status: :unavailable, message: why}}})
    end
  end

  defp schedule_respawn(state) do
    %{min_backoff_ms: min, max_backoff_ms: max} = Map.new(state.opts)
    delay = min(max, min * Integer.pow(2, max(state.failures - 1, 0)))
    Process.send_after(self(), :respawn, delay)
    %{state | status: :down}
  end

  # SIGTERM lets the worker stop gRPC and cancel jobs cleanly; SIGKILL is the
  # backstop, because closing a port does not kill the OS process.
  defp stop_os_process(port, os_pid, grace_ms) do
    System.cmd("kill", ["-TERM", to_string(os_pid)], stderr_to_stdout: true)

    unless await_exit(port, grace_ms) do
      Logger.warning("worker #{os_pid} ignored SIGTERM for #{grace_ms} ms; sending SIGKILL")
      System.cmd("kill", ["-KILL", to_string(os_pid)], stderr_to_stdout: true)
      await_exit(port, 1_000)
    end

    :ok
  end

  defp await_exit(port, timeout) do
    receive do
      {^port, {:exit_status, _}} -> true
    after
      timeout -> false
    end
  end
end
