defmodule Mix.Tasks.Rag.Ingest do
  @shortdoc "Reads conversation logs, Markdown and Elixir files into the RAG memory"

  @moduledoc """
  Chunks and embeds files into the RAG memory (the worker's vector store),
  with live progress:

      mix rag.ingest PATH... [--collection NAME] [--priority N] [--detach]

  Each `PATH` is a file or a directory (read recursively): `*.jsonl`
  conversation logs (OpenAI-style `{"messages": [...]}` lines, Claude Code
  sessions, one message per line), Continue sessions (`*.json` under
  `~/.continue/sessions`), `*.md` (chunked by heading), `*.ex`/`*.exs`
  (chunked by top-level definition). Paths are expanded here, so relative ones mean the
  same on a running host.

    * `--collection NAME` - the collection to fill (default `conversations`;
      `docs` is the other built-in one)
    * `--priority 0..9`, `--detach` - the job's priority; enqueue and return at once

  Malformed lines are skipped, never fatal: the task prints the counts
  (files, chunks, points added and already there, lines skipped) and each
  skipped line with its file and line number. Ingesting the same text again
  adds nothing (point ids are content hashes).

  It runs as a `:rag_ingest` job (`DevstralElixir.Rag.IngestRunner`): on the
  host answering on `127.0.0.1:$HTTP_PORT` when there is one (the embedded
  store admits one process), else in this process with a worker of its own
  that loads no generation model. Ctrl-C detaches without cancelling it.
  """
  use Mix.Task

  alias DevstralElixir.Jobs.CLI
  alias DevstralElixir.Rag.IngestRunner

  @task "rag.ingest"
  @switches [collection: :string]

  @impl Mix.Task
  def run(argv) do
    {flags, paths} = CLI.parse!(@task, argv, @switches ++ CLI.job_switches())
    args = args!(flags, paths)

    case CLI.run_job!(@task, :rag_ingest, args, Keyword.put(flags, :worker, :memory)) do
      nil -> :ok
      %{"result" => result} -> summary(result)
    end
  end

  @doc """
  The job args for `flags` and `paths` (expanded to absolute paths); raises
  `Mix.Error` naming what is wrong before any job exists.
  """
  @spec args!(keyword(), [String.t()]) :: map()
  def args!(flags, paths) do
    if paths == [], do: Mix.raise("mix #{@task}: give at least one PATH (a file or a directory)")

    args =
      %{"paths" => Enum.map(paths, &Path.expand/1)}
      |> then(fn args ->
        if flags[:collection], do: Map.put(args, "collection", flags[:collection]), else: args
      end)

    case IngestRunner.request(args, "check") do
      {:ok, _request} -> args
      {:error, message} -> Mix.raise("mix #{@task}: #{message}")
    end
  end

  defp summary(result) do
    metrics = result["metrics"] || %{}
    if result["message"] not in [nil, ""], do: Mix.shell().info(result["message"])

    for {name, value} <- Enum.sort(metrics) do
      Mix.shell().info("  #{name}: #{CLI.format_number(value)}")
    end

    case result["skipped"] || [] do
      [] ->
        :ok

      skipped ->
        Enum.each(skipped, &Mix.shell().info/1)
    end
  end
end
