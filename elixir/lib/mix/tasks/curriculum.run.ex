defmodule Mix.Tasks.Curriculum.Run do
  @shortdoc "Runs the three-stage curriculum as a queued job and follows it"

  @moduledoc """
  Enqueues a `:curriculum` job (train, evaluate and gate every stage; see
  `DevstralElixir.Curriculum.Runner`) and shows a live progress bar until it
  ends.

  Before any training the job checks the whole plan (every stage's eval set,
  training settings and gate, the base model, the dataset and the output
  directory; see `DevstralElixir.Curriculum.Preflight`): a plan that cannot
  finish fails within seconds, with one message listing every problem.
  A stage that fails (a worker crash) is retried up to the job's
  `max_attempts`, counted per stage: finishing a stage resets the count.

      mix curriculum.run [--config FILE] [--dataset DIR] [--base-model PATH]
                         [--max-steps N] [--run NAME] [--priority 0..9]
                         [--detach | --activate]

    * `--config` - the curriculum file (default `elixir/config/curriculum.exs`)
    * `--dataset`, `--base-model`, `--max-steps` - override the config
      (`--max-steps` applies to every stage)
    * `--run` - the run's directory name under `adapters_dir` (default: made
      from the config name, the time and the job id)
    * `--detach` - enqueue and return at once
    * `--activate` - when the run succeeds, activate its final promoted
      adapter (`RUN/stageN`) as `mix adapters.activate` does: blue-green,
      smoke-tested; see "Activation" below

  When a host answers on `127.0.0.1:$HTTP_PORT`, the job goes to it over the
  JSON API (the admin token comes from `ADMIN_TOKEN` or `DATA_DIR/admin_token`).
  Otherwise the queue and the Python worker start in this process and run
  the job here (see `DevstralElixir.Jobs.CLI`). Ctrl-C detaches without
  cancelling the job.

  ## Activation

  With `--activate`, once the job has succeeded, the last promoted stage's
  adapter is activated and the task prints its name and smoke-test result.
  If no stage was promoted it says so and activates nothing. If activation
  is refused (wrong base model, unreadable weights, failed smoke test) the
  task prints why and exits non-zero; the run itself still succeeded, its
  adapters are kept, and `mix adapters.activate RUN/stageN` can retry.

    * Through a host: `POST /api/adapters/activate` on that host (the same
      call as `mix adapters.activate`), so it serves the adapter at once.
    * In this process: the in-process worker stops when the task ends, so
      serving from it would make no sense. Instead the task calls the same
      worker RPC (`ActivateAdapter`) before the worker stops: the adapter is
      loaded and smoke-tested there, and the worker records it in
      `DATA_DIR/adapters/active.json`, which the next host started on that
      data directory restores (no new smoke test). The base model that host
      serves (`MODEL`) must be the one the adapter was trained on, which the
      activation checks.
  """

  use Mix.Task

  alias DevstralElixir.Curriculum.Activation
  alias DevstralElixir.Jobs.{CLI, CurriculumArgs}
  alias Mix.Tasks.Adapters

  @task "curriculum.run"

  @impl true
  def run(argv) do
    CurriculumArgs.run_job!(@task, :curriculum, options!(argv))
  end

  @doc """
  Parses the task's `argv` into the flags `DevstralElixir.Jobs.CurriculumArgs.run_job!/3`
  takes; `--activate` becomes an `:on_success` hook (`activate_after/2`).
  Raises `Mix.Error` for a bad flag, and for `--activate` with `--detach`
  (a detached run has no end to act on).
  """
  @spec options!([String.t()]) :: keyword()
  def options!(argv) do
    switches = CurriculumArgs.switches() ++ CLI.job_switches() ++ [activate: :boolean]
    {activate, flags} = @task |> CLI.parse_flags!(argv, switches) |> Keyword.pop(:activate)

    cond do
      activate != true ->
        flags

      flags[:detach] ->
        Mix.raise(
          "mix #{@task}: --activate waits for the run to succeed, so it cannot go with --detach; " <>
            "activate later with `mix adapters.activate RUN/stageN`"
        )

      true ->
        Keyword.put(flags, :on_success, &activate_after/2)
    end
  end

  @doc """
  After a succeeded run (`job`, the finished job's JSON form), activates its
  final promoted adapter: on the host when the run went through one
  (`where` is `:host`), else on the in-process worker before it stops
  (`:local`). Prints what was activated and the smoke test, or that no stage
  was promoted (activating nothing). Raises `Mix.Error` saying that the run
  succeeded and why activation was refused.
  """
  @spec activate_after(map(), :host | :local) :: :ok
  def activate_after(job, where) do
    case Activation.promoted(job["result"] || %{}) do
      :none ->
        Mix.shell().info("--activate: no stage was promoted; nothing activated")

      {:error, message} ->
        refused(job, nil, message)

      {:ok, name} ->
        Mix.shell().info("activating #{name} (#{describe(where)})")

        case activate(where, name) do
          {:ok, answer} -> Adapters.print_activation(answer)
          {:error, message} -> refused(job, name, message)
        end
    end
  end

  defp activate(:host, name), do: Adapters.activate(name)
  defp activate(:local, name), do: Activation.activate_on_worker(DevstralElixir.Worker, name)

  defp describe(:host), do: "on the running host"

  defp describe(:local),
    do: "on this process's worker; recorded in DATA_DIR/adapters/active.json for the next host"

  defp refused(job, name, message) do
    retry = if name, do: "; retry with `mix adapters.activate #{name}`", else: ""

    Mix.raise(
      "mix #{@task}: the run succeeded (job #{job["id"]}), but its adapter was not activated: " <>
        message <> retry
    )
  end
end
