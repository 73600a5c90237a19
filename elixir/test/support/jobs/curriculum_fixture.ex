defmodule DevstralElixir.Test.Jobs.CurriculumFixture do
  @moduledoc """
  A small curriculum on disk for runner tests: a dataset directory with
  `stageN/{train,eval}.jsonl` (eval splits mixing Elixir and replay rows) and
  a config keyword list pointing at it.
  """

  @doc "Writes the dataset under `root` and returns the config keyword list."
  @spec write!(Path.t(), keyword()) :: keyword()
  def write!(root, overrides \\ []) do
    dataset = Path.join(root, "dataset")

    for n <- 1..3 do
      dir = Path.join(dataset, "stage#{n}")
      File.mkdir_p!(dir)

      File.write!(
        Path.join(dir, "train.jsonl"),
        ~s({"text": "defmodule A#{n} do end", "source": "a"}\n)
      )

      File.write!(Path.join(dir, "eval.jsonl"), """
      {"text": "defmodule E#{n} do end", "source": "hex:e"}
      {"text": "import os", "source": "replay"}
      {"text": "def f(): pass", "source": "replay"}
      {"text": "IO.puts(:replay)", "source": "github:x"}
      """)
    end

    Keyword.merge(
      [
        name: "test",
        base_model: Path.join(root, "model"),
        dataset_dir: dataset,
        adapters_dir: Path.join(root, "adapters"),
        gate: [min_elixir_improvement_pct: 1.0, max_general_regression_pct: 5.0],
        defaults: [batch_size: 1, lora: [r: 8]],
        stages: [
          [epochs: 1, learning_rate: 2.0e-4],
          [epochs: 1, learning_rate: 1.0e-4, regularizer: [kind: :l2]],
          [max_steps: 4, learning_rate: 5.0e-5]
        ]
      ],
      overrides
    )
  end

  @doc "Writes the curriculum under `root` and returns its plan for run `r1`."
  @spec plan!(Path.t(), keyword()) :: DevstralElixir.Curriculum.Plan.t()
  def plan!(root, overrides \\ []) do
    {:ok, config} =
      DevstralElixir.Curriculum.Config.from_keyword(write!(root, overrides), [], data_dir: root)

    %DevstralElixir.Curriculum.Plan{
      config: config,
      run: "r1",
      run_dir: Path.join(config.adapters_dir, "r1"),
      job_id: "job-1"
    }
  end
end
