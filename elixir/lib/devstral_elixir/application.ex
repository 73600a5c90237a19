defmodule DevstralElixir.Application do
  @moduledoc """
  The OTP application: the always-on infrastructure (task supervisor) and,
  unless `start_services` is false (as in the test environment), the job
  queue (Mnesia under `DATA_DIR`), the Python worker and the HTTP server,
  configured from the environment by `DevstralElixir.Config`.

  The queue starts before the worker and the web server, so jobs re-queued
  after a restart wait for the worker like any other, and the API never
  answers for a queue that is not there.
  """
  use Application
  require Logger

  alias DevstralElixir.Config

  @impl true
  def start(_type, _args) do
    children =
      [{Task.Supervisor, name: DevstralElixir.TaskSupervisor}] ++
        if Application.get_env(:devstral_elixir, :start_services, true),
          do: services(load_config()),
          else: []

    Supervisor.start_link(children, strategy: :one_for_one, name: DevstralElixir.Supervisor)
  end

  @doc false
  @spec services(Config.t()) :: [Supervisor.child_spec() | {module(), keyword()}]
  def services(config) do
    File.mkdir_p!(config.data_dir)

    [{DevstralElixir.Jobs.AdminToken, data_dir: config.data_dir}] ++
      job_services(config, worker: true) ++
      [
        DevstralElixir.Web.UI.Sessions,
        DevstralElixir.Web.UI.JobHistory,
        {DevstralElixir.Web.Server,
         host: config.http_host,
         port: config.http_port,
         api_token: config.api_token,
         model: config.model,
         served_model_name: config.served_model_name,
         rag: config.rag,
         log_dir: Path.join(config.data_dir, "logs")}
      ]
  end

  @doc """
  What running jobs takes: the events registry, the queue with
  `job_runners/0` and, with `worker: true`, the Python worker. The host
  starts these as part of `services/1`; a Mix task that finds no host
  running starts them alone (`DevstralElixir.Jobs.CLI`).
  """
  @spec job_services(Config.t(), keyword()) :: [Supervisor.child_spec() | {module(), keyword()}]
  def job_services(config, opts) do
    opts = Keyword.validate!(opts, [:worker])

    [
      DevstralElixir.Jobs.Events,
      {DevstralElixir.Jobs.Queue, data_dir: config.data_dir, runners: job_runners()}
    ] ++ if(opts[:worker], do: [worker_spec(config)], else: [])
  end

  defp worker_spec(config) do
    {DevstralElixir.Worker,
     python: config.python,
     cd: config.root,
     args: if(config.worker_grpc, do: [], else: ["--no-grpc"]),
     env: %{
       "MODEL" => config.model,
       "GRPC_PORT" => Integer.to_string(config.grpc_port),
       "DATA_DIR" => config.data_dir
     }}
  end

  @doc """
  The runner of each job type the host runs (see `DevstralElixir.Jobs.Runner`),
  registered with the queue when it starts.
  """
  @spec job_runners() :: %{DevstralElixir.Jobs.Job.type() => module()}
  def job_runners do
    %{
      scrape: DevstralElixir.Scrape.Runner,
      build_dataset: DevstralElixir.Dataset.BuildRunner,
      curriculum: DevstralElixir.Curriculum.Runner,
      train_stage: DevstralElixir.Curriculum.StageRunner,
      rag_ingest: DevstralElixir.Rag.IngestRunner,
      evaluate: DevstralElixir.Evaluation.Runner
    }
  end

  # A bad setting stops the host with one clear line rather than a crash report.
  defp load_config do
    Config.load()
  rescue
    error in Config.Error ->
      IO.puts(:stderr, "configuration error: #{error.message}")
      System.halt(2)
  end
end
