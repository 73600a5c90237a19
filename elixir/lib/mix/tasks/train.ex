defmodule Mix.Tasks.Train do
  @shortdoc "Trains, evaluates and gates one curriculum stage as a queued job"

  @moduledoc """
  Enqueues a `:train_stage` job (see `DevstralElixir.Curriculum.StageRunner`)
  for one stage of the curriculum and follows it with a live progress bar.

      mix train --stage N [--config FILE] [--dataset DIR] [--base-model PATH]
                [--max-steps N] [--run NAME] [--init-adapter DIR]
                [--priority 0..9] [--detach]

  The stage starts from `--init-adapter`, else from the previous stage's
  adapter in the same `--run`, else from the base model. Its output goes to
  `adapters_dir/RUN/stageN/` with `metrics.json`. The other flags are those of
  `mix curriculum.run`, and so is the way it reaches the queue.
  """

  use Mix.Task

  alias DevstralElixir.Jobs.{CLI, CurriculumArgs}

  @switches [stage: :integer, init_adapter: :string]

  @impl true
  def run(argv) do
    task = "train"

    flags =
      CLI.parse_flags!(task, argv, @switches ++ CurriculumArgs.switches() ++ CLI.job_switches())

    if flags[:stage] == nil, do: Mix.raise("mix train: --stage N is required")
    CurriculumArgs.run_job!(task, :train_stage, flags)
  end
end
