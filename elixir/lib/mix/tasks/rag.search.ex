defmodule Mix.Tasks.Rag.Search do
  @shortdoc "Searches the RAG memory"

  @moduledoc """
  Searches the RAG memory (the worker's vector store) for the chunks nearest
  in meaning to a query:

      mix rag.search "QUERY" [--collection NAME] [--top-k N] [--min-score X]
        [--mode dense|hybrid] [--json]

    * `--collection NAME` - default `conversations`
    * `--top-k N` - at most N hits, 1..100 (default 5)
    * `--min-score X` - drop hits whose cosine score is below X, -1..1 (default 0.3)
    * `--mode dense|hybrid` - dense vectors only, or fused with BM25 (the worker's default when absent)
    * `--json` - print exactly one JSON line, `{"hits": [{"source", "score", "text"}, ...]}`

  Without `--json` it prints a table: score, source and the start of the text.
  It goes through the host answering on `127.0.0.1:$HTTP_PORT`
  (`POST /api/rag/search`) when one is up, else through a worker started in
  this process (see `DevstralElixir.Rag.Command`).
  """
  use Mix.Task

  alias DevstralElixir.Jobs.CLI
  alias DevstralElixir.Rag.{Command, Memory}

  @task "rag.search"
  @switches [
    collection: :string,
    top_k: :integer,
    min_score: :float,
    mode: :string,
    json: :boolean
  ]
  @text_width 72

  @impl Mix.Task
  def run(argv) do
    {body, json?} = parse!(argv)
    if json?, do: Command.logs_to_stderr()
    {:ok, request} = Memory.search_request(body)

    answer = Command.call!(@task, {:post, "/api/rag/search", body}, &Memory.search(&1, request))

    if json?, do: IO.puts(DevstralElixir.Web.Json.encode(answer)), else: table(answer["hits"])
  end

  @doc """
  Parses `argv` into the search body (JSON field names) and whether `--json`
  was given; raises `Mix.Error` naming the flag for a bad or missing value.
  """
  @spec parse!([String.t()]) :: {map(), boolean()}
  def parse!(argv) do
    {flags, positional} = CLI.parse!(@task, argv, @switches)

    query =
      case positional do
        [query] -> query
        [] -> Mix.raise(~s(mix #{@task}: give the query, e.g. mix #{@task} "supervision trees"))
        _ -> Mix.raise("mix #{@task}: give one query (quote it when it has spaces)")
      end

    body =
      flags
      |> Keyword.delete(:json)
      |> Map.new(fn {key, value} -> {Atom.to_string(key), value} end)
      |> Map.put("query", query)

    case Memory.search_request(body) do
      {:ok, _request} ->
        {body, flags[:json] == true}

      {:invalid, message, "query"} ->
        Mix.raise("mix #{@task}: the query: #{message}")

      {:invalid, message, field} ->
        Mix.raise("mix #{@task}: --#{String.replace(field, "_", "-")}: #{message}")
    end
  end

  defp table([]), do: Mix.shell().info("no hits")

  defp table(hits) do
    Mix.shell().info("score   source")

    for hit <- hits do
      score = :erlang.float_to_binary(hit["score"] * 1.0, decimals: 4)
      text = hit["text"] |> String.replace(~r/\s+/, " ") |> String.slice(0, @text_width)
      Mix.shell().info("#{score}  #{hit["source"]}\n        #{text}")
    end
  end
end
