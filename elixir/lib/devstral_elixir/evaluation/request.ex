defmodule DevstralElixir.Evaluation.Request do
  @moduledoc """
  Turns the `:evaluate` job's arguments into the worker's `EvaluateRequest`.

  Args (JSON, as `mix evaluate` enqueues them): `"problems"` (a shipped set's
  name, `humaneval-elixir` or `mbpp-elixir`, or a JSONL file), and optionally
  `"model"`, `"samples"`, `"temperature"`, `"max_tokens"`, `"completions"`,
  `"limit"`, `"out"`, `"timeout"` (seconds per program), `"workers"`
  (programs at once), `"loss_datasets"` (JSONL files for eval loss and
  perplexity), `"fim_datasets"` (held-out FIM JSONL for exact match and edit
  similarity) and `"fim_limit"` (FIM rows per file). `"problems"` may be left
  out when loss or FIM datasets are given.

  `"model"` is resolved on the host: the served model's id (`tiny-elixir`) or
  `MODEL` itself is the host's model; `BASE:RUN/stageN` is the host's model
  with the adapter `DATA_DIR/adapters/RUN/stageN` (the id the adapter is
  served under); else a model directory, or `DATA_DIR/models/ID`, or the
  repository's `data/models/ID`. Without `"model"` the host's model is used,
  unless `"completions"` are given: then no model is loaded.
  """

  alias DevstralElixir.Config
  alias DevstralElixir.Proto.{EvaluateRequest, SamplingParams}

  @shipped ~w(humaneval-elixir mbpp-elixir)

  # pass@10 needs different samples; MultiPL-E samples at 0.8.
  @default_sampled_temperature 0.8

  @doc "The shipped problem set names."
  @spec shipped() :: [String.t()]
  def shipped, do: @shipped

  @doc """
  The request for `args`, its output directory `out` (absolute). Raises
  `ArgumentError` naming the argument at fault.
  """
  @spec build!(map(), Config.t(), String.t(), Path.t()) :: EvaluateRequest.t()
  def build!(args, %Config{} = config, job_id, out) do
    datasets? = List.wrap(args["loss_datasets"]) ++ List.wrap(args["fim_datasets"]) != []
    completions_only = if datasets?, do: nil, else: args["completions"]
    {model, adapter} = model!(args["model"], completions_only, config)
    execution!(args, model: model, adapter: adapter, job_id: job_id, out: out)
  end

  @doc """
  The request for `args` (string keys, as in the moduledoc; `"model"` is not
  read) with the model already resolved. Options: `:model`, `:adapter`,
  `:job_id`, `:out` (required) and `:metrics_path` (a curriculum stage's
  metrics.json for the worker to add the results to).
  """
  @spec execution!(map(), keyword()) :: EvaluateRequest.t()
  def execution!(args, opts) do
    opts = Keyword.validate!(opts, [:model, :job_id, :out, adapter: "", metrics_path: ""])
    loss = files!(args, "loss_datasets")
    fim = files!(args, "fim_datasets")

    problems =
      if args["problems"] == nil and loss ++ fim != [],
        do: nil,
        else: problems!(args["problems"])

    samples = non_negative!(args, "samples")

    temperature =
      case args["temperature"] do
        nil when samples > 1 -> @default_sampled_temperature
        nil -> 0.0
        t when is_number(t) and t >= 0 -> t / 1
        t -> raise ArgumentError, "temperature must be a number >= 0, got #{inspect(t)}"
      end

    completions = args["completions"] && Path.expand(args["completions"])

    if completions && not File.regular?(completions),
      do: raise(ArgumentError, "completions file #{completions} does not exist")

    %EvaluateRequest{
      job_id: opts[:job_id],
      model: opts[:model],
      adapter: opts[:adapter] || "",
      benchmarks: List.wrap(problems),
      loss_datasets: loss,
      fim_datasets: fim,
      max_fim_examples: non_negative!(args, "fim_limit"),
      completions_path: completions || "",
      samples_per_problem: samples,
      max_problems: non_negative!(args, "limit"),
      params: %SamplingParams{
        temperature: temperature,
        max_tokens: non_negative!(args, "max_tokens")
      },
      timeout_s: (args["timeout"] || 0) / 1,
      max_workers: non_negative!(args, "workers"),
      output_dir: Path.expand(opts[:out]),
      metrics_path: opts[:metrics_path]
    }
  end

  @doc "A shipped name as it is; a file's absolute path; raises for anything else."
  @spec problems!(term()) :: String.t()
  def problems!(name) when name in @shipped, do: name

  def problems!(path) when is_binary(path) and path != "" do
    full = Path.expand(path)

    if File.regular?(full),
      do: full,
      else:
        raise(
          ArgumentError,
          "problems: #{inspect(path)} is neither a shipped set (#{Enum.join(@shipped, ", ")}) nor a file"
        )
  end

  def problems!(_),
    do:
      raise(
        ArgumentError,
        "problems is required: #{Enum.join(@shipped, " or ")}, or a JSONL file"
      )

  @doc "`{model directory, adapter directory or \"\"}` for a model id; see the moduledoc."
  @spec model!(String.t() | nil, String.t() | nil, Config.t()) :: {String.t(), String.t()}
  def model!(nil, completions, _config) when is_binary(completions), do: {"", ""}
  def model!(nil, _completions, config), do: {config.model, ""}

  def model!(id, _completions, config) when is_binary(id) do
    base_names = [config.served_model_name, config.model]

    cond do
      id in base_names ->
        {config.model, ""}

      (adapter = adapter_of(id, base_names, config)) != nil ->
        {config.model, adapter}

      File.dir?(Path.expand(id)) ->
        {Path.expand(id), ""}

      File.dir?(Path.join([config.data_dir, "models", id])) ->
        {Path.join([config.data_dir, "models", id]), ""}

      File.dir?(Path.join([config.root, "data", "models", id])) ->
        {Path.join([config.root, "data", "models", id]), ""}

      true ->
        raise ArgumentError,
              "model: no model #{inspect(id)} (the served id #{inspect(config.served_model_name)}, " <>
                "BASE:RUN/stageN for an adapter, a model directory, or DATA_DIR/models/ID)"
    end
  end

  defp adapter_of(id, base_names, config) do
    with [base, name] <- String.split(id, ":", parts: 2),
         true <- base in base_names do
      dir = Path.join([config.data_dir, "adapters", name])

      if File.regular?(Path.join(dir, "adapter_config.json")),
        do: dir,
        else: raise(ArgumentError, "model: #{inspect(id)} names no adapter (#{dir} has none)")
    else
      _ -> nil
    end
  end

  defp files!(args, key) do
    for path <- List.wrap(args[key]) do
      full = Path.expand(path)

      if File.regular?(full),
        do: full,
        else: raise(ArgumentError, "#{key}: #{full} does not exist")
    end
  end

  defp non_negative!(args, key) do
    case args[key] do
      nil -> 0
      n when is_integer(n) and n >= 0 -> n
      n -> raise ArgumentError, "#{key} must be an integer >= 0, got #{inspect(n)}"
    end
  end
end
