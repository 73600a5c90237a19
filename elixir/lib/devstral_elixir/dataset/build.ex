defmodule DevstralElixir.Dataset.Build do
  @moduledoc """
  Builds the three-stage curriculum dataset by calling the worker's
  `BuildDataset` method through the contract, and reports its progress.

  The `:build_dataset` job (`DevstralElixir.Dataset.BuildRunner`, which
  `mix curriculum.build` enqueues) runs it on the host's worker.
  """

  alias DevstralElixir.Proto.BuildDatasetRequest
  alias DevstralElixir.Worker
  alias DevstralElixir.Worker.JobStream

  @options [:inputs, :out, config: nil, seed: 0, eval_files: [], job_id: nil]

  @doc """
  Checks the options and turns them into a `BuildDatasetRequest`. Raises
  `ArgumentError` naming the problem (a missing input directory or config
  file) before any work starts; the worker checks the rest (manifests, the
  config's fields) just as early.
  """
  @spec request!(keyword()) :: BuildDatasetRequest.t()
  def request!(opts) do
    opts = Keyword.validate!(opts, @options)
    inputs = Enum.map(opts[:inputs] || [], &Path.expand/1)
    if inputs == [], do: raise(ArgumentError, "at least one --input directory is required")

    for input <- inputs, not File.dir?(input) do
      raise ArgumentError, "input directory #{input} does not exist"
    end

    unless is_binary(opts[:out]), do: raise(ArgumentError, "--out DIR is required")

    %BuildDatasetRequest{
      job_id:
        opts[:job_id] || "build-" <> Base.encode16(:crypto.strong_rand_bytes(4), case: :lower),
      inputs: inputs,
      out_dir: Path.expand(opts[:out]),
      config_json: config_json(opts[:config]),
      seed: opts[:seed],
      eval_files: Enum.map(opts[:eval_files], &Path.expand/1)
    }
  end

  @doc """
  Runs the build on `worker` (a `DevstralElixir.Worker` name or pid) with
  `DevstralElixir.Worker.JobStream`: `report` gets every event as a map, and
  the result is `JobStream.run/4`'s (`{:ok, completed}` holds the dataset
  directory in `artifact_path` and the build's counts in `metrics`).
  """
  @spec run(GenServer.server(), BuildDatasetRequest.t(), (map() -> any())) ::
          JobStream.result()
  def run(worker, %BuildDatasetRequest{} = request, report),
    do: JobStream.run({Worker, worker}, "BuildDataset", request, report)

  # The worker takes the config as JSON; a .json file is passed as it is, an
  # .exs file holding a map or keyword list is converted.
  defp config_json(nil), do: ""

  defp config_json(path) do
    path = Path.expand(path)
    unless File.regular?(path), do: raise(ArgumentError, "config file #{path} does not exist")

    case Path.extname(path) do
      ".json" ->
        File.read!(path)

      ".exs" ->
        {config, _binding} = Code.eval_file(path)
        :jiffy.encode(Map.new(config), [:use_nil])

      other ->
        raise ArgumentError, "config file #{path}: expected .json or .exs, got #{inspect(other)}"
    end
  end
end
