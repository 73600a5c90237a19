defmodule Mix.Tasks.Rag.Stats do
  @shortdoc "Shows the RAG memory's collections and their sizes"

  @moduledoc """
  Shows where the RAG memory lives (the embedded store's directory or the
  Qdrant server's URL), its embedding model, and each collection's points,
  distinct sources and dimensions:

      mix rag.stats [--json]

  `--json` prints the answer of `GET /api/rag/stats` as one JSON line. It goes
  through the host answering on `127.0.0.1:$HTTP_PORT` when one is up, else
  through a worker started in this process (see `DevstralElixir.Rag.Command`).
  """
  use Mix.Task

  alias DevstralElixir.Jobs.CLI
  alias DevstralElixir.Rag.{Command, Memory}

  @task "rag.stats"

  @impl Mix.Task
  def run(argv) do
    flags = CLI.parse_flags!(@task, argv, json: :boolean)
    if flags[:json], do: Command.logs_to_stderr()
    stats = Command.call!(@task, {:get, "/api/rag/stats", nil}, &Memory.stats/1)

    if flags[:json] do
      IO.puts(DevstralElixir.Web.Json.encode(stats))
    else
      Mix.shell().info("memory: #{stats["location"]} (embeddings: #{stats["embed_model"]})")

      case stats["collections"] do
        [] ->
          Mix.shell().info("no collections yet")

        collections ->
          for c <- collections do
            Mix.shell().info(
              "  #{c["name"]}: #{c["points"]} points from #{c["sources"]} sources, #{c["dimensions"]} dimensions"
            )
          end
      end
    end
  end
end
