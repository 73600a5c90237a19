defmodule Mix.Tasks.Adapters.Merge do
  @shortdoc "Writes an adapter merged into its base model as a full checkpoint"

  @moduledoc """
  Merges an adapter into its base model (peft's `merge_and_unload`) and writes
  a full Hugging Face checkpoint: safetensors weights, config and tokenizer,
  loadable by vLLM, TGI or llama.cpp's converter.

      mix adapters.merge RUN/stageN --out DIR [--base MODEL] [--force]

  `RUN/stageN` is a name under `DATA_DIR/adapters` (or its model id
  `tiny-elixir:RUN/stageN`, or an adapter directory). The base model is the
  adapter's own `base_model_name_or_path` unless `--base` names a copy. It
  runs `python -m python_worker.serving.merge` with the worker's Python
  (`WORKER_PYTHON`) and needs no running host.
  """

  use Mix.Task

  alias DevstralElixir.Jobs.CLI

  @switches [out: :string, base: :string, force: :boolean]

  @impl true
  def run(argv) do
    task = "adapters.merge"
    Mix.Task.run("app.config")

    {flags, id} =
      case CLI.parse!(task, argv, @switches) do
        {flags, [id]} ->
          {flags, id}

        _ ->
          Mix.raise(
            "mix #{task}: give exactly one adapter, e.g. mix #{task} RUN/stage3 --out DIR"
          )
      end

    out = flags[:out] || Mix.raise("mix #{task}: --out DIR is required")
    adapter = adapter_dir(task, id)
    config = DevstralElixir.Config.load()

    args =
      ["-m", "python_worker.serving.merge", adapter, "--out", Path.expand(out)] ++
        if(flags[:base], do: ["--base", flags[:base]], else: []) ++
        if(flags[:force], do: ["--force"], else: [])

    {_, status} =
      System.cmd(config.python, args,
        cd: DevstralElixir.Config.root(),
        into: IO.stream(:stdio, :line),
        stderr_to_stdout: true
      )

    if status != 0, do: Mix.raise("mix #{task}: merging #{adapter} failed (exit #{status})")
  end

  # A directory as given, else a name (optionally after "MODEL:") under DATA_DIR/adapters.
  defp adapter_dir(task, id) do
    root = Path.join(DevstralElixir.Config.data_dir(), "adapters")
    name = id |> String.split(":") |> List.last()

    cond do
      File.exists?(Path.join(id, "adapter_config.json")) ->
        Path.expand(id)

      File.exists?(Path.join([root, name, "adapter_config.json"])) ->
        Path.join(root, name)

      true ->
        Mix.raise(
          "mix #{task}: no adapter #{id}: neither #{id} nor #{Path.join(root, name)} holds adapter_config.json"
        )
    end
  end
end
