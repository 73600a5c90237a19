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
                         [--max-steps N] [--run NAME] [--priority 0..9] [--detach]

    * `--config` - the curriculum file (default `elixir/config/curriculum.exs`)
    * `--dataset`, `--base-model`, `--max-steps` - override the config
      (`--max-steps` applies to every stage)
    * `--run` - the run's directory name under `adapters_dir` (default: made
      from the config name, the time and the job id)
    * `--detach` - enqueue and return at once

  When a host answers on `127.0.0.1:$HTTP_PORT`, the job goes to it over the
  JSON API (the admin token comes from `ADMIN_TOKEN` or `DATA_DIR/admin_token`).
  Otherwise the queue and the Python worker start in this process and run
  the job here (see `DevstralElixir.Jobs.CLI`). Ctrl-C detaches without
  cancelling the job.
  """

  use Mix.Task

  alias DevstralElixir.Jobs.{CLI, CurriculumArgs}

  @impl true
  def run(argv) do
    task = "curriculum.run"
    flags = CLI.parse_flags!(task, argv, CurriculumArgs.switches() ++ CLI.job_switches())
    CurriculumArgs.run_job!(task, :curriculum, flags)
  end
end
