defmodule DevstralElixir.Curriculum.ConfigTest do
  use ExUnit.Case, async: true

  alias DevstralElixir.Curriculum.{Config, Gate}

  @data_dir "/srv/data"

  defp base(overrides \\ []) do
    Keyword.merge(
      [
        base_model: "/models/m",
        dataset_dir: "datasets/c",
        stages: [
          [epochs: 1, learning_rate: 2.0e-4],
          [epochs: 1, learning_rate: 1.0e-4],
          [max_steps: 10, learning_rate: 5.0e-5]
        ]
      ],
      overrides
    )
  end

  defp check(term, overrides \\ []), do: Config.from_keyword(term, overrides, data_dir: @data_dir)

  defp stage(n, kv), do: List.replace_at(base()[:stages], n - 1, kv)

  test "every config file in elixir/config/curriculum*.exs loads" do
    files =
      Path.wildcard(Path.join(DevstralElixir.Config.root(), "elixir/config/curriculum*.exs"))

    assert Config.default_path() in files

    for file <- files do
      assert {:ok, config} = Config.load(file, [], data_dir: @data_dir), "#{file} does not load"
      assert length(config.stages) == 3
    end
  end

  test "the default file: the tiny model, three stages, the gate" do
    config = Config.load!(nil, [], data_dir: @data_dir)
    # The model `make` builds lives in the repository, not under DATA_DIR.
    assert config.base_model == Path.join(DevstralElixir.Config.root(), "models/tiny-code")
    assert config.dataset_dir == "/srv/data/datasets/curriculum"
    assert config.adapters_dir == "/srv/data/adapters"
    assert config.gate == %Gate{min_elixir_improvement_pct: 1.0, max_general_regression_pct: 5.0}
    [s1, s2, s3] = config.stages
    assert {s1.number, s2.number, s3.number} == {1, 2, 3}
    assert s1.eval_set == "/srv/data/datasets/curriculum/stage1/eval.jsonl"
    assert s1.lora.r == 32 and s1.lora.alpha == 64.0
    assert s1.quantization == "nf4"
    assert s1.save_minutes == 10.0 and s1.max_seq_length == 2048
    assert s2.regularizer == %{kind: "l2", weight: 0.1}
    assert {s2.epochs, s2.max_seq_length} == {1, 2048}
    assert s3.learning_rate == 5.0e-5
  end

  test "defaults merge under each stage, nested lists too; paths resolve" do
    {:ok, config} =
      check(
        base(
          defaults: [batch_size: 2, lora: [r: 16, dropout: 0.1]],
          stages: [
            [epochs: 1, learning_rate: 1.0e-4, lora: [r: 8]],
            [epochs: 2, learning_rate: 1, batch_size: 3]
          ],
          general_eval: "general.jsonl"
        )
      )

    [s1, s2] = config.stages
    assert s1.batch_size == 2 and s1.lora.r == 8 and s1.lora.dropout == 0.1
    assert s2.batch_size == 3 and s2.lora.r == 16
    assert s2.learning_rate == 1.0
    assert s1.name == "stage 1"
    assert config.dataset_dir == "/srv/data/datasets/c"
    assert config.general_eval == "/srv/data/datasets/c/general.jsonl"
    assert s2.eval_set == "/srv/data/datasets/c/stage2/eval.jsonl"
    assert s1.regularizer == %{kind: nil, weight: nil}
    assert s1.epochs == 1 and s1.max_steps == nil
  end

  test "a stage may override the gate" do
    {:ok, config} =
      check(
        base(stages: [[epochs: 1, learning_rate: 1.0e-4, gate: [max_general_regression_pct: 9]]])
      )

    assert hd(config.stages).gate == %Gate{
             min_elixir_improvement_pct: 1.0,
             max_general_regression_pct: 9.0
           }
  end

  test "overrides: dataset, base model, max_steps on every stage" do
    {:ok, config} =
      check(base(), dataset_dir: "/d", base_model: "Qwen/Qwen2.5-Coder-1.5B", max_steps: 7)

    assert config.dataset_dir == "/d"
    assert config.base_model == "Qwen/Qwen2.5-Coder-1.5B"
    assert Enum.map(config.stages, & &1.max_steps) == [7, 7, 7]
    assert {:ok, _} = check(base(), dataset_dir: nil)
    assert {:error, "--max-steps must be a positive integer, got 0"} = check(base(), max_steps: 0)
  end

  test "invalid configs are rejected with field-level messages" do
    cases = [
      # Only wire types are the host's: ranges and meanings are the worker's
      # (asked through validate_only; see the worker check test below).
      {base(stages: stage(2, epochs: 1, learning_rate: "fast")),
       ~s(stages[2].learning_rate must be a number, got "fast")},
      {base(stages: stage(1, epochs: 1.5)), "stages[1].epochs must be an integer, got 1.5"},
      {base(stages: stage(2, epochs: 1, learning_rate: 1.0e-4, learnin_rate: 1)),
       "stages[2] has an unknown key :learnin_rate; known keys: :name, :epochs"},
      {base(stages: stage(2, epochs: 1, lora: [r: "8"])),
       ~s(stages[2].lora.r must be an integer, got "8")},
      {base(stages: stage(1, epochs: 1, regularizer: [kind: 3])),
       "stages[1].regularizer.kind must be a name (an atom or a string), got 3"},
      {base(stages: stage(1, save_minutes: "10")),
       ~s(stages[1].save_minutes must be a number, got "10")},
      {base(stages: stage(1, seed: -1)), "stages[1].seed must be an integer >= 0, got -1"},
      {base(stages: stage(2, :oops)), "stages[2] must be a keyword list, got :oops"},
      {base(stages: []), "stages must be a list of 1 to 3 stages"},
      {base(stages: List.duplicate([epochs: 1, learning_rate: 1.0], 4)),
       "stages must be a list of 1 to 3 stages"},
      {Keyword.delete(base(), :base_model), "base_model is required"},
      {base(base_model: ""), ~s(base_model must be a non-empty string, got "")},
      {base(gate: [max_general_regression_pct: -5]),
       "gate.max_general_regression_pct must be a number >= 0, got -5"},
      {base(gate: [min_elixir_improvement_pct: nil]),
       "gate.min_elixir_improvement_pct must be a number >= 0, got nil"},
      {base(gate: [min_improvement: 1]), "gate has an unknown key :min_improvement"},
      {base(defaults: [batch: 1]), "defaults has an unknown key :batch"},
      {base(stagez: []), "the curriculum config has an unknown key :stagez"},
      {base(stages: stage(1, epochs: 1, epochs: 2, learning_rate: 1.0)),
       "stages[1] sets :epochs more than once"},
      {"not a keyword list", "the curriculum config must be a keyword list"}
    ]

    for {term, expected} <- cases do
      assert {:error, message} = check(term)
      assert message =~ expected, "expected #{inspect(expected)}, got #{inspect(message)}"
    end
  end

  test "a value from defaults is reported at the stage that uses it" do
    assert {:error, "stages[1].batch_size must be an integer, got 2.5"} =
             check(base(defaults: [batch_size: 2.5]))
  end

  test "training values are passed on unjudged: their ranges are the worker's" do
    assert {:ok, config} =
             check(base(stages: stage(2, epochs: 0, learning_rate: -1, lora: [r: 0])))

    assert %{epochs: 0, learning_rate: -1.0, lora: %{r: 0}} = Enum.at(config.stages, 1)
  end

  test "file errors name the file" do
    dir = Path.join(System.tmp_dir!(), "devstral-config-#{System.unique_integer([:positive])}")
    File.mkdir_p!(dir)
    on_exit(fn -> File.rm_rf!(dir) end)

    assert {:error, message} = Config.load(Path.join(dir, "none.exs"))
    assert message =~ "none.exs: no such curriculum config file"

    broken = Path.join(dir, "broken.exs")
    File.write!(broken, "[stages: ")
    assert {:error, message} = Config.load(broken)
    assert message =~ "broken.exs: cannot evaluate the config"

    bad = Path.join(dir, "bad.exs")

    File.write!(
      bad,
      "[base_model: data_dir, dataset_dir: \"d\", stages: [[epochs: 1, learning_rate: :x]]]"
    )

    assert {:error, message} = Config.load(bad, [], data_dir: "/x")
    assert message =~ "bad.exs: stages[1].learning_rate must be a number, got :x"
    assert_raise ArgumentError, ~r/learning_rate/, fn -> Config.load!(bad) end
  end
end
