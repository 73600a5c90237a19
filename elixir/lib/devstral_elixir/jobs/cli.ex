defmodule DevstralElixir.Jobs.Cli do
  @moduledoc """
  What `mix curriculum.run` and `mix train` share: turning flags into job
  args, checking them before anything starts, and enqueueing the job and
  following it with a live progress bar.

  Ctrl-C detaches: the job is not cancelled. On a running host it carries on;
  when the queue ran in the Mix process, the job stays in Mnesia and resumes
  the next time a host starts.
  """

  alias DevstralElixir.Curriculum.Plan
  alias DevstralElixir.Jobs.{Client, Events, ProgressBar, Queue}

  @common_switches [
    config: :string,
    dataset: :string,
    base_model: :string,
    max_steps: :integer,
    run: :string,
    priority: :integer,
    detach: :boolean
  ]

  @doc "The switches every curriculum task takes."
  @spec common_switches() :: keyword()
  def common_switches, do: @common_switches

  @doc """
  Parses `argv` with the common switches plus `extra`; raises `Mix.Error`
  on unknown or malformed flags and on positional arguments.
  """
  @spec parse!(String.t(), [String.t()], keyword()) :: keyword()
  def parse!(task, argv, extra \\ []) do
    {opts, rest, invalid} = OptionParser.parse(argv, strict: @common_switches ++ extra)

    cond do
      invalid != [] ->
        {flag, value} = hd(invalid)
        Mix.raise("mix #{task}: invalid option #{flag}#{if value, do: "=#{value}"}")

      rest != [] ->
        Mix.raise("mix #{task}: unexpected argument #{inspect(hd(rest))}")

      true ->
        opts
    end
  end

  @doc """
  Job args from parsed flags: `--config`, `--dataset`, `--base-model`
  (expanded when it names an existing path), `--max-steps`, `--run`, and for
  `mix train` `--stage` and `--init-adapter`.
  """
  @spec args(keyword()) :: map()
  def args(opts) do
    [
      {"config", opts[:config] && Path.expand(opts[:config])},
      {"dataset_dir", opts[:dataset] && Path.expand(opts[:dataset])},
      {"base_model", opts[:base_model] && expand_if_path(opts[:base_model])},
      {"max_steps", opts[:max_steps]},
      {"run", opts[:run]},
      {"stage", opts[:stage]},
      {"init_adapter", opts[:init_adapter] && Path.expand(opts[:init_adapter])}
    ]
    |> Enum.reject(fn {_key, value} -> is_nil(value) end)
    |> Map.new()
  end

  @doc "Checks the args as the job's runner will (config file included); raises `Mix.Error`."
  @spec check_args!(map(), boolean()) :: :ok
  def check_args!(args, stage?) do
    case Plan.from_args(args, stage?: stage?) do
      {:ok, _plan} -> :ok
      {:error, message} -> Mix.raise(flag_names(message))
    end
  end

  @flags %{
    "args.config" => "--config",
    "args.dataset_dir" => "--dataset",
    "args.base_model" => "--base-model",
    "args.max_steps" => "--max-steps",
    "args.run" => "--run",
    "args.stage" => "--stage",
    "args.init_adapter" => "--init-adapter"
  }

  # The runner speaks of job args; on the command line they are flags.
  defp flag_names(message) do
    Enum.reduce(@flags, message, fn {arg, flag}, acc -> String.replace(acc, arg, flag) end)
  end

  @doc """
  Enqueues a job and, unless `--detach`, follows it until it ends. Raises
  (exit status 1) when it fails or is cancelled.
  """
  @spec run_job!(atom(), map(), keyword()) :: :ok
  def run_job!(type, args, opts) do
    data_dir = DevstralElixir.Config.data_dir()

    conn =
      case Client.connect(port: http_port(), data_dir: data_dir, start_local: &start_local/0) do
        {:ok, conn} -> conn
        {:error, message} -> Mix.raise(message)
      end

    job =
      case Client.enqueue(conn, type, args, priority: opts[:priority]) do
        {:ok, job} -> job
        {:error, message} -> Mix.raise(message)
      end

    Mix.shell().info("enqueued #{type} job #{job["id"]} on #{Client.describe(conn)}")

    if opts[:detach] do
      Mix.shell().info("detached; follow it with GET /api/jobs/#{job["id"]}")
    else
      Mix.shell().info("following it; Ctrl-C detaches without cancelling")
      follow!(conn, job["id"])
    end
  end

  defp follow!(conn, id) do
    {:ok, printed} = Agent.start_link(fn -> nil end)

    result =
      Client.follow(conn, id, fn job ->
        print_log_line(job, printed)
        IO.write("\r\e[K" <> ProgressBar.render(job))
      end)

    IO.write("\n")

    case result do
      {:ok, %{"state" => "succeeded"}} ->
        Mix.shell().info("job #{id} succeeded")

      {:ok, %{"state" => state} = job} ->
        Mix.raise("job #{id} #{state}: #{job["error"] || "no reason recorded"}")

      {:error, message} ->
        Mix.raise(message)
    end
  end

  # LOG events (stage started, gate verdict) get a line of their own above the bar.
  defp print_log_line(%{"progress" => %{"kind" => "LOG", "message" => message}}, printed)
       when is_binary(message) and message != "" do
    if Agent.get_and_update(printed, &{&1, message}) != message,
      do: IO.write("\r\e[K" <> message <> "\n")
  end

  defp print_log_line(_job, _printed), do: :ok

  defp start_local do
    Mix.Task.run("app.start")

    # The host's supervision tree normally runs the queue; start one if it did not.
    if GenServer.whereis(Queue) == nil do
      children = [Events, {Queue, []}]
      {:ok, _} = Supervisor.start_link(children, strategy: :rest_for_one)
    end

    :ok
  end

  defp http_port do
    case Integer.parse(System.get_env("HTTP_PORT", "4000")) do
      {port, ""} when port in 1..65_535 -> port
      _ -> Mix.raise("HTTP_PORT must be an integer from 1 to 65535")
    end
  end

  defp expand_if_path(value) do
    if String.starts_with?(value, ["/", ".", "~"]) or File.exists?(value),
      do: Path.expand(value),
      else: value
  end
end
