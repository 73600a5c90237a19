defmodule DevstralElixir.Jobs.CLI do
  @moduledoc """
  The one command-line client of the job queue, shared by every long Mix
  task (`scrape.*`, `curriculum.build`, `curriculum.run`, `train`,
  `rag.ingest`): strict
  flag parsing with errors that name the flag, then `run_job!/4`, which
  enqueues the task's job and follows it with live progress.

  The job goes to a host answering on `127.0.0.1:$HTTP_PORT` over its JSON
  API (the admin token comes from `ADMIN_TOKEN` or `DATA_DIR/admin_token`).
  When none answers, the queue (and the Python worker, for jobs that need
  it) starts in this process and runs the job here; it stops when the task
  ends.

  Tasks that are not jobs but need the host's worker (`mix rag.search`,
  `mix rag.stats`) decide where to run the same way, with
  `with_connection!/3`.

  Ctrl-C detaches: the job is not cancelled. On a running host it carries on;
  when the queue ran in the Mix process, the job stays in Mnesia and resumes
  the next time a host starts.
  """

  alias DevstralElixir.Jobs.{Client, ProgressBar, Queue}

  @job_switches [priority: :integer, detach: :boolean]

  @doc "The switches every job-running task takes: `--priority 0..9` and `--detach`."
  @spec job_switches() :: keyword()
  def job_switches, do: @job_switches

  @doc """
  Parses `argv` with `OptionParser`'s strict mode; returns `{flags, positional}`.
  An unknown flag, a missing value or a value of the wrong type raises
  `Mix.Error` naming the flag.
  """
  @spec parse!(String.t(), [String.t()], keyword()) :: {keyword(), [String.t()]}
  def parse!(task, argv, switches) do
    case OptionParser.parse(argv, strict: switches) do
      {parsed, rest, []} ->
        {parsed, rest}

      {_parsed, _rest, [{flag, value} | _]} ->
        known = flag |> String.trim_leading("-") |> String.replace("-", "_")

        cond do
          not Enum.any?(switches, fn {name, _} -> Atom.to_string(name) == known end) ->
            Mix.raise("mix #{task}: unknown option #{flag} (see `mix help #{task}`)")

          value == nil ->
            Mix.raise("mix #{task}: #{flag} needs a value")

          true ->
            Mix.raise("mix #{task}: invalid value #{inspect(value)} for #{flag}")
        end
    end
  end

  @doc "`parse!/3` for a task without positional arguments: raises when any are given."
  @spec parse_flags!(String.t(), [String.t()], keyword()) :: keyword()
  def parse_flags!(task, argv, switches) do
    {flags, rest} = parse!(task, argv, switches)
    if rest != [], do: Mix.raise("mix #{task}: unexpected arguments #{Enum.join(rest, " ")}")
    flags
  end

  @doc "Raises unless `value` (when given) is a positive integer."
  @spec positive!(String.t(), String.t(), integer() | nil) :: pos_integer() | nil
  def positive!(_task, _flag, nil), do: nil
  def positive!(_task, _flag, value) when is_integer(value) and value > 0, do: value

  def positive!(task, flag, value),
    do: Mix.raise("mix #{task}: #{flag} must be a positive integer, got #{value}")

  @doc "Parses a `YYYY-MM-DD` date or raises naming the flag."
  @spec date!(String.t(), String.t(), String.t() | nil) :: Date.t() | nil
  def date!(_task, _flag, nil), do: nil

  def date!(task, flag, value) do
    case Date.from_iso8601(value) do
      {:ok, date} ->
        date

      {:error, _} ->
        Mix.raise("mix #{task}: #{flag} must be a date like 2024-01-31, got #{inspect(value)}")
    end
  end

  @doc "Splits a comma-separated list (`nil` stays `nil`)."
  @spec list(String.t() | nil) :: [String.t()] | nil
  def list(nil), do: nil
  def list(value), do: value |> String.split(",", trim: true) |> Enum.map(&String.trim/1)

  @doc "A job metric for display: whole numbers without decimals, others with 3."
  @spec format_number(number()) :: String.t()
  def format_number(value) when value == trunc(value), do: Integer.to_string(trunc(value))
  def format_number(value), do: :erlang.float_to_binary(value * 1.0, decimals: 3)

  @doc "Keeps only the options that were given (drops `nil` values)."
  @spec given(keyword()) :: keyword()
  def given(opts), do: Enum.reject(opts, fn {_k, v} -> is_nil(v) end)

  @doc """
  Enqueues a job of `type` with `args` for `mix task` and, unless
  `detach: true`, follows it until it ends, printing its `LOG` progress
  lines (and, on a terminal, a live progress bar). Returns the finished job
  (JSON form) when it succeeded, nil when detached; raises `Mix.Error` when
  it failed or was cancelled.

  Options: `:priority`, `:detach` (the parsed `job_switches/0`),
  `:worker` (what the job needs when it runs in this process, see
  `with_connection!/3`; default false) and `:on_success`, a function called with the
  succeeded job and where it ran (`:host`, or `:local` while the in-process
  queue and worker are still up, before they stop). Other keys (a task's
  own flags) are ignored.
  """
  @spec run_job!(String.t(), atom(), map(), keyword()) :: map() | nil
  def run_job!(task, type, args, opts) do
    with_connection!(task, [worker: opts[:worker] || false], fn conn ->
      enqueue_and_follow!(task, conn, type, args, opts)
    end)
  end

  @doc """
  Runs `fun` with a connection (`DevstralElixir.Jobs.Client.conn/0`): to the
  host answering on `127.0.0.1:$HTTP_PORT` (`{:http, base, token}`), or,
  when none answers and no other process holds the data directory, to a
  queue started in this process (`{:local, queue, events}`), which stops
  (with Mnesia) when `fun` returns. Raises `Mix.Error` naming the task when
  neither can be had.

  Option `:worker`: whether a local start also starts the Python worker
  (registered as `DevstralElixir.Worker`): `false` (default), `true` (with
  the configured `MODEL`) or `:memory` (no generation model and no gRPC: the
  embedder and the RAG memory only, up in seconds).
  """
  @spec with_connection!(String.t(), keyword(), (Client.conn() -> result)) :: result
        when result: term()
  def with_connection!(task, opts, fun) do
    opts = Keyword.validate!(opts, worker: false)
    Mix.Task.run("app.config")
    data_dir = DevstralElixir.Config.data_dir()
    local = fn -> start_local(task, opts[:worker]) end

    {conn, local_sup} =
      case Client.connect(port: http_port(task), data_dir: data_dir, start_local: local) do
        {:ok, {:local, _, _} = conn} -> {conn, Process.get({__MODULE__, :local})}
        {:ok, conn} -> {conn, nil}
        {:error, message} -> Mix.raise("mix #{task}: #{message}")
      end

    try do
      fun.(conn)
    after
      stop_local(local_sup)
    end
  end

  defp enqueue_and_follow!(task, conn, type, args, opts) do
    job =
      case Client.enqueue(conn, type, args, priority: opts[:priority]) do
        {:ok, job} -> job
        {:error, message} -> Mix.raise("mix #{task}: #{message}")
      end

    Mix.shell().info("enqueued #{type} job #{job["id"]} on #{Client.describe(conn)}")

    if opts[:detach] do
      Mix.shell().info("detached; follow it with GET /api/jobs/#{job["id"]}")
      nil
    else
      Mix.shell().info("following it; Ctrl-C detaches without cancelling")
      done = follow!(task, conn, job["id"])
      if on_success = opts[:on_success], do: on_success.(done, where(conn))
      done
    end
  end

  defp where({:local, _, _}), do: :local
  defp where(_conn), do: :host

  defp follow!(task, conn, id) do
    {:ok, printed} = Agent.start_link(fn -> nil end)
    bar? = IO.ANSI.enabled?()

    result =
      Client.follow(conn, id, fn job ->
        print_log_line(job, printed, bar?)
        if bar?, do: IO.write("\r\e[K" <> ProgressBar.render(job))
      end)

    Agent.stop(printed)
    if bar?, do: IO.write("\n")

    case result do
      {:ok, %{"state" => "succeeded"} = job} ->
        Mix.shell().info("job #{id} succeeded")
        job

      {:ok, %{"state" => state} = job} ->
        Mix.raise("mix #{task}: job #{id} #{state}: #{job["error"] || "no reason recorded"}")

      {:error, message} ->
        Mix.raise("mix #{task}: #{message}")
    end
  end

  # LOG events (a scraped package, a stage started, a gate verdict) get a
  # line of their own above the bar; a job seen twice prints its line once.
  defp print_log_line(%{"progress" => %{"kind" => "LOG", "message" => message}}, printed, bar?)
       when is_binary(message) and message != "" do
    if Agent.get_and_update(printed, &{&1, message}) != message,
      do: IO.write(if(bar?, do: "\r\e[K", else: "") <> message <> "\n")
  end

  defp print_log_line(_job, _printed, _bar?), do: :ok

  # No host answered: run the queue here, with only what the job needs. The
  # application starts without its services, so no web server or default
  # worker comes up for a scrape.
  defp start_local(task, worker) do
    Application.put_env(:devstral_elixir, :start_services, false)
    Mix.Task.run("app.start")

    if GenServer.whereis(Queue) == nil do
      config =
        try do
          DevstralElixir.Config.load()
        rescue
          error in DevstralElixir.Config.Error ->
            Mix.raise("mix #{task}: configuration error: #{error.message}")
        end

      config =
        if worker == :memory,
          do: %{config | model: "none", worker_grpc: false},
          else: config

      children = DevstralElixir.Application.job_services(config, worker: worker != false)
      {:ok, sup} = Supervisor.start_link(children, strategy: :rest_for_one)
      # Unlinked, so stopping it at the end does not take this process along.
      Process.unlink(sup)
      Process.put({__MODULE__, :local}, sup)
    end

    :ok
  end

  defp stop_local(nil), do: :ok

  # The task is over: the queue started for it goes, and so does Mnesia, so
  # the same BEAM can later open another data directory.
  defp stop_local(sup) do
    Process.delete({__MODULE__, :local})
    Supervisor.stop(sup)
    :stopped = :mnesia.stop()
    :ok
  end

  defp http_port(task) do
    case Integer.parse(System.get_env("HTTP_PORT", "4000")) do
      {port, ""} when port in 1..65_535 -> port
      _ -> Mix.raise("mix #{task}: HTTP_PORT must be an integer from 1 to 65535")
    end
  end
end
