defmodule DevstralElixir.Curriculum.Plan do
  @moduledoc """
  What a curriculum or train-stage job will do, built from its args:

    * `"config"` - the config file (default `elixir/config/curriculum.exs`);
    * `"dataset_dir"`, `"base_model"`, `"max_steps"` - overrides of the config;
    * `"run"` - the run's name, i.e. its directory `adapters_dir/RUN`
      (default `<config name>-<enqueue time>-job<id>`, stable across retries
      so that a retry finds the stages and checkpoints already done);
    * train-stage jobs also take `"stage"` (1..3) and `"init_adapter"`.

  Keys may be strings (as in JSON) or atoms.
  """

  alias DevstralElixir.Curriculum.Config

  defstruct [:config, :run, :run_dir, :job_id, :stage, :init_adapter]

  @type t :: %__MODULE__{
          config: Config.t(),
          run: String.t(),
          run_dir: Path.t(),
          job_id: String.t(),
          stage: pos_integer() | nil,
          init_adapter: Path.t() | nil
        }

  @common ~w(config dataset_dir base_model max_steps run)
  @stage_keys ~w(stage init_adapter)

  @doc """
  The plan for a job's args. Options: `:job` (gives the default run name and
  the worker-side job id), `:stage?` (a train-stage job: `"stage"` is
  required), `:data_dir`.
  """
  @spec from_args(map(), keyword()) :: {:ok, t()} | {:error, String.t()}
  def from_args(args, opts \\ []) do
    opts = Keyword.validate!(opts, job: nil, stage?: false, data_dir: nil)
    args = Map.new(args, fn {key, value} -> {to_string(key), value} end)
    allowed = if opts[:stage?], do: @common ++ @stage_keys, else: @common

    with :ok <- known_keys(args, allowed),
         {:ok, path} <- optional_string(args, "config"),
         {:ok, overrides} <- overrides(args),
         {:ok, config} <- Config.load(path, overrides, data_dir: opts[:data_dir]),
         {:ok, run} <- run_name(args, config, opts[:job]),
         {:ok, stage} <- stage(args, config, opts[:stage?]),
         {:ok, init_adapter} <- optional_string(args, "init_adapter") do
      {:ok,
       %__MODULE__{
         config: config,
         run: run,
         run_dir: Path.join(config.adapters_dir, run),
         job_id: if(opts[:job], do: "job-#{opts[:job].id}", else: "job"),
         stage: stage,
         init_adapter: init_adapter && Path.expand(init_adapter)
       }}
    end
  end

  @doc "The directory of stage `number`: `RUN/stageN`."
  @spec stage_dir(t(), pos_integer()) :: Path.t()
  def stage_dir(%__MODULE__{run_dir: run_dir}, number), do: Path.join(run_dir, "stage#{number}")

  defp known_keys(args, allowed) do
    case Map.keys(args) -- allowed do
      [] ->
        :ok

      [key | _] ->
        {:error, "args has an unknown key #{inspect(key)}; known: #{Enum.join(allowed, ", ")}"}
    end
  end

  defp optional_string(args, key) do
    case Map.get(args, key) do
      nil -> {:ok, nil}
      value when is_binary(value) and value != "" -> {:ok, value}
      value -> {:error, "args.#{key} must be a non-empty string, got #{inspect(value)}"}
    end
  end

  defp overrides(args) do
    with {:ok, dataset_dir} <- optional_string(args, "dataset_dir"),
         {:ok, base_model} <- optional_string(args, "base_model") do
      case Map.get(args, "max_steps") do
        steps when is_nil(steps) or (is_integer(steps) and steps > 0) ->
          {:ok, [dataset_dir: dataset_dir, base_model: base_model, max_steps: steps]}

        steps ->
          {:error, "args.max_steps must be a positive integer, got #{inspect(steps)}"}
      end
    end
  end

  defp run_name(args, config, job) do
    case Map.get(args, "run") do
      nil when job == nil ->
        {:ok, config.name}

      nil ->
        stamp = Calendar.strftime(job.inserted_at || DateTime.utc_now(), "%Y%m%d-%H%M%S")
        {:ok, sanitize("#{config.name}-#{stamp}-job#{job.id}")}

      run when is_binary(run) ->
        if run =~ ~r/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/,
          do: {:ok, run},
          else:
            {:error,
             "args.run must be 1 to 100 letters, digits, '.', '_' or '-' (a directory name), " <>
               "got #{inspect(run)}"}

      run ->
        {:error, "args.run must be a string, got #{inspect(run)}"}
    end
  end

  # Config names are free text; run directory names are not.
  defp sanitize(name), do: String.replace(name, ~r/[^A-Za-z0-9._-]/, "_")

  defp stage(_args, _config, false), do: {:ok, nil}

  defp stage(args, config, true) do
    case Map.get(args, "stage") do
      nil ->
        {:error, "args.stage is required (1..#{length(config.stages)})"}

      number when is_integer(number) ->
        with {:ok, _stage} <- Config.stage(config, number), do: {:ok, number}

      other ->
        {:error, "args.stage must be an integer, got #{inspect(other)}"}
    end
  end
end
