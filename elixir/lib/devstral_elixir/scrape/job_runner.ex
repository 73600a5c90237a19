defmodule DevstralElixir.Scrape.JobRunner do
  @moduledoc """
  The `:scrape` job: runs one scraper from the job queue with the same library
  code as the `mix scrape.*` tasks.

  Args (JSON): `"source"` (`"hex"`, `"github"`, `"local"` or `"docs"`), and
  optionally `"out"`, `"limit"`, `"concurrency"`, `"paths"` (local only). Other
  settings keep the scrapers' defaults and environment variables. Scrapes are
  resumable, so a retried job skips what the manifest already holds.
  """
  @behaviour DevstralElixir.Jobs.Runner

  alias DevstralElixir.Jobs.Job
  alias DevstralElixir.Scrape.{Docs, GitHub, Hex, Local}

  @sources %{"hex" => Hex, "github" => GitHub, "local" => Local, "docs" => Docs}
  @keys %{"out" => :out, "limit" => :limit, "concurrency" => :concurrency}

  @impl true
  def validate_args(args) do
    cond do
      not Map.has_key?(@sources, args["source"]) ->
        {:error, "source must be one of #{@sources |> Map.keys() |> Enum.join(", ")}"}

      args["source"] == "local" and not match?([_ | _], args["paths"]) ->
        {:error, "a local scrape needs \"paths\", a non-empty list of directories"}

      true ->
        :ok
    end
  end

  @impl true
  def run(%Job{args: args}, report) do
    with :ok <- validate_args(args) do
      opts = for {key, atom} <- @keys, Map.has_key?(args, key), do: {atom, args[key]}
      progress = fn event -> report.(progress(event)) end

      summary =
        case args["source"] do
          "local" -> Local.run(args["paths"], opts, progress)
          source -> @sources[source].run(opts, progress)
        end

      {:ok, Map.take(summary, [:fetched, :skipped, :rejected, :bytes])}
    else
      {:error, message} -> {:discard, message}
    end
  end

  defp progress({:package, event}) when is_map(event),
    do: %{"phase" => "scrape", "message" => inspect(Map.take(event, [:name, :version, :status]))}

  defp progress({:done, summary}),
    do: %{
      "phase" => "done",
      "message" => "fetched #{summary[:fetched]}, skipped #{summary[:skipped]}"
    }

  defp progress(other), do: %{"phase" => "scrape", "message" => inspect(other)}
end
