defmodule DevstralElixir.Jobs.CurriculumArgs do
  @moduledoc """
  The flags of `mix curriculum.run` and `mix train` as the args of their
  `:curriculum` and `:train_stage` jobs, checked the way the job's runner
  will check them (`DevstralElixir.Curriculum.Plan.from_args/2`) before
  anything is enqueued.
  """

  alias DevstralElixir.Curriculum.Plan

  @switches [
    config: :string,
    dataset: :string,
    base_model: :string,
    max_steps: :integer,
    run: :string
  ]

  @flags %{
    "args.config" => "--config",
    "args.dataset_dir" => "--dataset",
    "args.base_model" => "--base-model",
    "args.max_steps" => "--max-steps",
    "args.run" => "--run",
    "args.stage" => "--stage",
    "args.init_adapter" => "--init-adapter"
  }

  @doc "The switches both tasks take (`mix train` adds `--stage` and `--init-adapter`)."
  @spec switches() :: keyword()
  def switches, do: @switches

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
  @spec check!(String.t(), map(), boolean()) :: :ok
  def check!(task, args, stage?) do
    case Plan.from_args(args, stage?: stage?) do
      {:ok, _plan} -> :ok
      {:error, message} -> Mix.raise("mix #{task}: " <> flag_names(message))
    end
  end

  @doc """
  What `mix curriculum.run` (`:curriculum`) and `mix train` (`:train_stage`)
  do with their parsed flags: turn them into args, check those, then run the
  job with `DevstralElixir.Jobs.CLI.run_job!/4` (with the Python worker when
  it runs in this process).
  """
  @spec run_job!(String.t(), :curriculum | :train_stage, keyword()) :: :ok
  def run_job!(task, type, flags) do
    Mix.Task.run("app.config")
    args = args(flags)
    check!(task, args, type == :train_stage)
    DevstralElixir.Jobs.CLI.run_job!(task, type, args, Keyword.put(flags, :worker, true))
    :ok
  end

  # The runner speaks of job args; on the command line they are flags.
  defp flag_names(message) do
    Enum.reduce(@flags, message, fn {arg, flag}, acc -> String.replace(acc, arg, flag) end)
  end

  defp expand_if_path(value) do
    if String.starts_with?(value, ["/", ".", "~"]) or File.exists?(value),
      do: Path.expand(value),
      else: value
  end
end
