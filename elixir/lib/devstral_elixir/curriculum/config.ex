defmodule DevstralElixir.Curriculum.Config do
  @moduledoc """
  The curriculum plan: a file (default `elixir/config/curriculum.exs`) that
  evaluates to a keyword list, checked field by field. Every error names the
  field with its path, e.g. `stages[2].learning_rate must be a number, got
  "fast"` (stages are numbered from 1, like the stages themselves).

  The file is evaluated with two variables bound: `data_dir` (`DATA_DIR`) and
  `root` (the repository root).

  ## Top-level keys

    * `:name` - a label for the runs (default `"curriculum"`)
    * `:base_model` - the model to specialise: a directory or a hub id (required)
    * `:dataset_dir` - the curriculum dataset, as written by `BuildDataset`
      (`stageN/{train,eval}.jsonl`) (required)
    * `:adapters_dir` - where runs go, `adapters_dir/RUN/stageN/` (default `DATA_DIR/adapters`)
    * `:general_eval` - a general-code (non-Elixir) eval JSONL for the
      forgetting guard; nil derives one from the `replay` rows of each
      stage's eval set
    * `:gate` - the promotion gate, `[min_elixir_improvement_pct: 1.0,
      max_general_regression_pct: 5.0]` (see `DevstralElixir.Curriculum.Gate`)
    * `:execution_eval` - execution-based evaluation (`mix evaluate`'s) of the
      base model before stage 1 and of every stage's adapter after training:
      `[problems: "humaneval-elixir", limit: 40, samples: 1, temperature: 0.0,
      max_tokens: 512]`; `problems: nil` (the default) turns it off. The
      gate's `min_pass_at_1_gain` and `min_compile_rate` need it
    * `:defaults` - stage settings shared by every stage (deep-merged under each)
    * `:stages` - one to three keyword lists, run in order (required)

  ## Stage keys

  The host's own: `:name`, `:eval_set` (default `stageN/eval.jsonl`) and
  `:gate` (overrides the top-level gate for this stage).

  Training settings, passed to the worker as they are: `:epochs`,
  `:max_steps` (wins over epochs), `:learning_rate`, `:batch_size`,
  `:gradient_accumulation_steps`, `:max_seq_length`, `:warmup_ratio`,
  `:max_grad_norm`, `:save_steps`, `:save_minutes` (also checkpoint after
  this many minutes; fractions allowed), `:eval_steps`,
  `:early_stopping_patience` (-1 disables), `:early_stopping_threshold`,
  `:quantization` (`:nf4` or `:none`), `:gradient_checkpointing`, `:packing`,
  `:seed`, `:lora` (`r`, `alpha`, `dropout`, `target_modules`,
  `train_embeddings` - stage 1 only - and `embeddings_learning_rate`) and
  `:regularizer` (`kind: :none | :l2 | :ewc`, `weight`). Settings left out
  take the worker's defaults.

  This file is the one home of the stages' settings. The host checks a
  training setting only for the type its wire field needs; the worker owns
  their meaning and ranges, and is asked (`Train` with `validate_only`, see
  `DevstralElixir.Curriculum.Preflight`) before anything starts, so a bad value
  is reported with the worker's field-level message, e.g.
  `stages[2] (worker): config.learning_rate must be > 0, got -1.0`.

  ## Paths

  `dataset_dir` and `adapters_dir` may be relative to `DATA_DIR`; `eval_set`
  and `general_eval` relative to `dataset_dir`. `base_model` is a directory
  when it is absolute, starts with `.` or `~`, or names a directory under
  `DATA_DIR`; otherwise it is passed on as a hub id.

  ## Overrides

  `load/2` takes overrides as the CLI flags give them: `:dataset_dir`,
  `:base_model` and `:max_steps` (applied to every stage).
  """

  alias DevstralElixir.Curriculum.Config.{Schema, Stage}
  alias DevstralElixir.Curriculum.Gate

  defstruct [
    :path,
    :name,
    :base_model,
    :dataset_dir,
    :adapters_dir,
    :general_eval,
    :gate,
    execution_eval: %{problems: nil},
    stages: []
  ]

  @type t :: %__MODULE__{
          path: Path.t() | nil,
          name: String.t(),
          base_model: String.t(),
          dataset_dir: Path.t(),
          adapters_dir: Path.t(),
          general_eval: Path.t() | nil,
          gate: Gate.t(),
          execution_eval: %{
            problems: String.t() | nil,
            limit: non_neg_integer() | nil,
            samples: pos_integer() | nil,
            temperature: float() | nil,
            max_tokens: non_neg_integer() | nil
          },
          stages: [Stage.t()]
        }

  @type override ::
          {:dataset_dir, Path.t()} | {:base_model, String.t()} | {:max_steps, pos_integer()}

  @max_stages 3

  @doc "The default config file, `elixir/config/curriculum.exs`."
  @spec default_path() :: Path.t()
  def default_path, do: Path.join(DevstralElixir.Config.root(), "elixir/config/curriculum.exs")

  @doc """
  Loads and checks a config file (nil: `default_path/0`) with overrides.
  Options: `:data_dir` (default `DATA_DIR`).
  """
  @spec load(Path.t() | nil, [override()], keyword()) :: {:ok, t()} | {:error, String.t()}
  def load(path \\ nil, overrides \\ [], opts \\ []) do
    opts = Keyword.validate!(opts, data_dir: nil)
    data_dir = opts[:data_dir] || DevstralElixir.Config.data_dir()
    path = Path.expand(path || default_path())

    with {:ok, source} <- read(path),
         {:ok, term} <- evaluate(source, path, data_dir),
         {:ok, config} <- from_keyword(term, overrides, data_dir: data_dir) do
      {:ok, %{config | path: path}}
    else
      {:error, message} -> {:error, "#{Path.relative_to_cwd(path)}: #{message}"}
    end
  end

  @doc "Like `load/3`, but raises `ArgumentError` with the message."
  @spec load!(Path.t() | nil, [override()], keyword()) :: t()
  def load!(path \\ nil, overrides \\ [], opts \\ []) do
    case load(path, overrides, opts) do
      {:ok, config} -> config
      {:error, message} -> raise ArgumentError, message
    end
  end

  @doc """
  Checks a config given as a keyword list (what the file evaluates to) and
  applies overrides. Options: `:data_dir`.
  """
  @spec from_keyword(term(), [override()], keyword()) :: {:ok, t()} | {:error, String.t()}
  def from_keyword(term, overrides \\ [], opts \\ []) do
    opts = Keyword.validate!(opts, data_dir: nil)
    data_dir = opts[:data_dir] || DevstralElixir.Config.data_dir()

    with {:ok, term} <- apply_overrides(term, overrides),
         {:ok, top} <- Schema.validate(term, top_schema(), ""),
         {:ok, stages} <- stages(top),
         :ok <- execution_gates(top.execution_eval, stages) do
      dataset_dir = Path.expand(top.dataset_dir, data_dir)

      {:ok,
       %__MODULE__{
         name: top.name,
         base_model: resolve_model(top.base_model, data_dir),
         dataset_dir: dataset_dir,
         adapters_dir: Path.expand(top.adapters_dir || "adapters", data_dir),
         general_eval: top.general_eval && Path.expand(top.general_eval, dataset_dir),
         gate: struct(Gate, top.gate),
         execution_eval: top.execution_eval,
         stages: Enum.map(stages, &resolve_stage(&1, dataset_dir))
       }}
    end
  end

  # A gate on pass@1 or the compile rate needs the numbers measured.
  defp execution_gates(%{problems: problems}, stages) do
    needing =
      for stage <- stages,
          key <- [:min_pass_at_1_gain, :min_compile_rate],
          Map.fetch!(stage.gate, key) != nil,
          do: "stages[#{stage.number}].gate.#{key}"

    if problems == nil and needing != [],
      do:
        {:error,
         "#{hd(needing)} needs execution_eval.problems (e.g. \"humaneval-elixir\") to measure it"},
      else: :ok
  end

  @doc "A stage by number."
  @spec stage(t(), pos_integer()) :: {:ok, Stage.t()} | {:error, String.t()}
  def stage(%__MODULE__{stages: stages}, number) do
    case Enum.find(stages, &(&1.number == number)) do
      nil -> {:error, "stage must be one of 1..#{length(stages)}, got #{inspect(number)}"}
      stage -> {:ok, stage}
    end
  end

  # Schemas

  defp top_schema do
    [
      {:name, Schema.string(), "curriculum"},
      {:base_model, Schema.string(), :required},
      {:dataset_dir, Schema.string(), :required},
      {:adapters_dir, Schema.nilable(Schema.string()), nil},
      {:general_eval, Schema.nilable(Schema.string()), nil},
      {:gate, Schema.nested(gate_schema(1.0, 5.0)), []},
      {:execution_eval, Schema.nested(execution_schema()), []},
      {:defaults, &defaults/1, []},
      {:stages, &stage_list/1, :required}
    ]
  end

  # At the top level both thresholds are numbers (the gate compares against
  # them); a stage's own gate may leave either nil, meaning "the top level's".
  defp gate_schema(min_improvement, max_regression) do
    check =
      if is_nil(min_improvement),
        do: Schema.nilable(Schema.non_neg_number()),
        else: Schema.non_neg_number()

    [
      {:min_elixir_improvement_pct, check, min_improvement},
      {:max_general_regression_pct, check, max_regression},
      {:min_pass_at_1_gain, Schema.nilable(Schema.non_neg_number()), nil},
      {:min_compile_rate, Schema.nilable(Schema.non_neg_number()), nil}
    ]
  end

  defp execution_schema do
    [
      {:problems, Schema.nilable(Schema.string()), nil},
      {:limit, Schema.nilable(Schema.non_neg_integer()), nil},
      {:samples, Schema.nilable(Schema.non_neg_integer()), nil},
      {:temperature, Schema.nilable(Schema.non_neg_number()), nil},
      {:max_tokens, Schema.nilable(Schema.non_neg_integer()), nil}
    ]
  end

  # Training settings are checked only for their wire types: their ranges
  # and meaning are the worker's (asked through validate_only).
  defp stage_schema do
    int = Schema.nilable(Schema.integer())
    num = Schema.nilable(Schema.number())

    [
      {:name, Schema.nilable(Schema.string()), nil},
      {:epochs, int, nil},
      {:max_steps, int, nil},
      {:learning_rate, num, nil},
      {:batch_size, int, nil},
      {:gradient_accumulation_steps, int, nil},
      {:max_seq_length, int, nil},
      {:warmup_ratio, num, nil},
      {:max_grad_norm, num, nil},
      {:save_steps, int, nil},
      {:save_minutes, num, nil},
      {:eval_steps, int, nil},
      {:early_stopping_patience, int, nil},
      {:early_stopping_threshold, num, nil},
      {:quantization, Schema.nilable(Schema.name()), nil},
      {:gradient_checkpointing, Schema.boolean(), false},
      {:packing, Schema.boolean(), false},
      # uint64 on the wire: a negative seed cannot be sent at all.
      {:seed, Schema.nilable(Schema.non_neg_integer()), nil},
      {:lora, Schema.nested(lora_schema()), []},
      {:regularizer, Schema.nested(regularizer_schema()), []},
      {:eval_set, Schema.nilable(Schema.string()), nil},
      {:gate, Schema.nested(gate_schema(nil, nil)), []}
    ]
  end

  defp lora_schema do
    [
      {:r, Schema.nilable(Schema.integer()), nil},
      {:alpha, Schema.nilable(Schema.number()), nil},
      {:dropout, Schema.nilable(Schema.number()), nil},
      {:target_modules, Schema.nilable(Schema.strings()), nil},
      {:train_embeddings, Schema.boolean(), false},
      {:embeddings_learning_rate, Schema.nilable(Schema.number()), nil}
    ]
  end

  defp regularizer_schema do
    [
      {:kind, Schema.nilable(Schema.name()), nil},
      {:weight, Schema.nilable(Schema.number()), nil}
    ]
  end

  # Checked here only for shape; each stage checks the merged values.
  defp defaults(value) do
    known = Enum.map(stage_schema(), &elem(&1, 0))

    cond do
      not (is_list(value) and Keyword.keyword?(value)) ->
        Schema.must("a keyword list", value)

      unknown = Enum.find(Keyword.keys(value), &(&1 not in known)) ->
        {:error,
         "has an unknown key #{inspect(unknown)}; known keys: #{Enum.map_join(known, ", ", &inspect/1)}"}

      true ->
        {:ok, value}
    end
  end

  defp stage_list(value) do
    if is_list(value) and length(value) in 1..@max_stages,
      do: {:ok, value},
      else: Schema.must("a list of 1 to #{@max_stages} stages (keyword lists)", value)
  end

  # Stages

  defp stages(top) do
    top.stages
    |> Enum.with_index(1)
    |> Enum.reduce_while({:ok, []}, fn {raw, number}, {:ok, acc} ->
      case build_stage(raw, number, top) do
        {:ok, stage} -> {:cont, {:ok, [stage | acc]}}
        {:error, _} = error -> {:halt, error}
      end
    end)
    |> case do
      {:ok, stages} -> {:ok, Enum.reverse(stages)}
      error -> error
    end
  end

  defp build_stage(raw, number, top) do
    where = "stages[#{number}]"

    with {:ok, merged} <- merge_defaults(top.defaults, raw, where),
         {:ok, checked} <- Schema.validate(merged, stage_schema(), where) do
      gate = Map.merge(top.gate, checked.gate, fn _key, top_value, own -> own || top_value end)

      {:ok,
       struct(Stage, %{
         checked
         | gate: struct(Gate, gate),
           name: checked.name || "stage #{number}",
           eval_set: checked.eval_set || "stage#{number}/eval.jsonl"
       })
       |> Map.put(:number, number)}
    end
  end

  defp merge_defaults(defaults, raw, where) do
    if is_list(raw) and Keyword.keyword?(raw) do
      {:ok, deep_merge(defaults, raw)}
    else
      {:error, "#{where} must be a keyword list, got #{inspect(raw)}"}
    end
  end

  defp deep_merge(base, override) do
    Keyword.merge(base, override, fn _key, base_value, value ->
      if Keyword.keyword?(base_value) and base_value != [] and Keyword.keyword?(value),
        do: deep_merge(base_value, value),
        else: value
    end)
  end

  # Overrides

  defp apply_overrides(term, overrides) do
    Enum.reduce_while(overrides, {:ok, term}, fn override, {:ok, term} ->
      case apply_override(term, override) do
        {:ok, term} -> {:cont, {:ok, term}}
        {:error, _} = error -> {:halt, error}
      end
    end)
  end

  defp apply_override(term, {_key, nil}), do: {:ok, term}

  defp apply_override(term, {key, value}) when key in [:dataset_dir, :base_model] do
    if is_list(term) and Keyword.keyword?(term),
      do: {:ok, Keyword.put(term, key, value)},
      else: {:ok, term}
  end

  defp apply_override(term, {:max_steps, steps}) do
    cond do
      not (is_integer(steps) and steps > 0) ->
        {:error, "--max-steps must be a positive integer, got #{inspect(steps)}"}

      is_list(term) and Keyword.keyword?(term) and is_list(term[:stages]) ->
        stages =
          Enum.map(term[:stages], fn stage ->
            if Keyword.keyword?(stage), do: Keyword.put(stage, :max_steps, steps), else: stage
          end)

        {:ok, Keyword.put(term, :stages, stages)}

      true ->
        {:ok, term}
    end
  end

  defp apply_override(_term, {key, _value}),
    do: {:error, "unknown override #{inspect(key)}; known: :dataset_dir, :base_model, :max_steps"}

  # Paths

  defp resolve_stage(stage, dataset_dir),
    do: %{stage | eval_set: Path.expand(stage.eval_set, dataset_dir)}

  defp resolve_model(model, data_dir) do
    cond do
      String.starts_with?(model, "/") -> model
      String.starts_with?(model, [".", "~"]) -> Path.expand(model)
      File.dir?(Path.join(data_dir, model)) -> Path.join(data_dir, model)
      true -> model
    end
  end

  # The file

  defp read(path) do
    case File.read(path) do
      {:ok, source} -> {:ok, source}
      {:error, :enoent} -> {:error, "no such curriculum config file"}
      {:error, reason} -> {:error, "cannot read the config: #{:file.format_error(reason)}"}
    end
  end

  defp evaluate(source, path, data_dir) do
    binding = [data_dir: data_dir, root: DevstralElixir.Config.root()]
    {term, _binding} = Code.eval_string(source, binding, file: path)
    {:ok, term}
  rescue
    exception -> {:error, "cannot evaluate the config: #{Exception.message(exception)}"}
  end
end
