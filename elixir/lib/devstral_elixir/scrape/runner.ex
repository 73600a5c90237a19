defmodule DevstralElixir.Scrape.Runner do
  @moduledoc """
  The `:scrape` job: runs one scraper (`DevstralElixir.Scrape.Hex`,
  `GitHub`, `Local` or `Docs`) from the job queue. The `mix scrape.*` tasks
  enqueue it (`args/3` turns their options into its args).

  Args (JSON): `"source"` (`"hex"`, `"github"`, `"local"` or `"docs"`),
  `"paths"` (local only: a non-empty list of directories), and any option
  of that scraper by name (`"out"`, `"limit"`, `"licenses"`, dates as
  `"YYYY-MM-DD"`, ...). Options left out keep the scraper's defaults, which
  read the environment of the process running the job (`DATA_DIR`,
  `HEX_API_URL`, `HEX_MIRROR`, `GITHUB_TOKEN`). The token is never a job
  arg: job args are shown by the jobs API.

  Each package outcome is reported as a `LOG` progress event whose message
  is its `DevstralElixir.Scrape.Progress` line, with `step`/`total_steps`.
  The result holds the counts, the run's `errors` and `"summary"`, the
  summary line. A run that could not scrape anything at all (its listing
  failed) fails the job without retries: the scrapers' HTTP client has
  already retried. Scrapes are resumable, so a retried job skips what the
  manifest already holds.
  """
  @behaviour DevstralElixir.Jobs.Runner

  alias DevstralElixir.Jobs.Job
  alias DevstralElixir.Scrape.{Docs, GitHub, Hex, Local, Progress}

  @sources %{"hex" => Hex, "github" => GitHub, "local" => Local, "docs" => Docs}

  # Options a job may not set: the token is a secret, `http` is for tests.
  @internal [:token, :http]
  @dates [:updated_since, :pushed_since]

  @doc """
  The job args for a scrape of `source` with the scraper options `opts`
  (and, for `"local"`, the directories `paths`): JSON-shaped, with paths
  expanded here, since a host may run the job in another directory.
  """
  @spec args(String.t(), keyword(), [Path.t()] | nil) :: map()
  def args(source, opts, paths \\ nil) do
    opts
    |> Map.new(fn {key, value} -> {Atom.to_string(key), arg(key, value)} end)
    |> Map.put("source", source)
    |> then(
      &if paths, do: Map.put(&1, "paths", Enum.map(paths, fn p -> Path.expand(p) end)), else: &1
    )
  end

  defp arg(key, path) when key in [:out, :hex_manifest] and is_binary(path), do: Path.expand(path)
  defp arg(_key, %Date{} = date), do: Date.to_iso8601(date)
  defp arg(_key, value), do: value

  @impl true
  def validate_args(args) do
    with {:ok, scraper, opts} <- options(args) do
      _ = scraper.options(opts)
      :ok
    end
  rescue
    error in ArgumentError -> {:error, "scrape #{args["source"]}: #{Exception.message(error)}"}
  end

  @impl true
  def run(%Job{args: args}, report) do
    with :ok <- validate_args(args),
         {:ok, scraper, opts} <- options(args) do
      for app <- [:crypto, :public_key, :ssl, :inets],
          do: {:ok, _} = Application.ensure_all_started(app)

      progress = fn event -> report_event(event, report) end

      summary =
        if scraper == Local,
          do: Local.run(args["paths"], opts, progress),
          else: scraper.run(opts, progress)

      outcome(summary)
    else
      {:error, message} -> {:discard, message}
    end
  end

  defp options(%{"source" => source} = args) when is_map_key(@sources, source) do
    scraper = @sources[source]
    known = scraper.options([]) |> Keyword.keys() |> Kernel.--(@internal)
    names = Map.new(known, &{Atom.to_string(&1), &1})
    given = Map.drop(args, ["source", "paths"])

    case Enum.reject(Map.keys(given), &Map.has_key?(names, &1)) do
      [] ->
        with :ok <- check_paths(source, args["paths"]) do
          {:ok, scraper, Enum.map(given, fn {name, value} -> option(names[name], value) end)}
        end

      unknown ->
        {:error,
         "scrape #{source}: unknown option(s) #{Enum.join(Enum.sort(unknown), ", ")}; " <>
           "known: #{known |> Enum.map(&Atom.to_string/1) |> Enum.sort() |> Enum.join(", ")}"}
    end
  end

  defp options(args) do
    {:error,
     "source must be one of #{@sources |> Map.keys() |> Enum.sort() |> Enum.join(", ")}, " <>
       "got #{inspect(args["source"])}"}
  end

  defp check_paths("local", [_ | _] = paths) do
    if Enum.all?(paths, &is_binary/1),
      do: :ok,
      else: {:error, "scrape local: \"paths\" must be a list of directories"}
  end

  defp check_paths("local", _paths),
    do: {:error, "a local scrape needs \"paths\", a non-empty list of directories"}

  defp check_paths(source, nil) when source != "local", do: :ok
  defp check_paths(source, _paths), do: {:error, "scrape #{source}: \"paths\" is for local only"}

  defp option(key, value) when key in @dates and is_binary(value) do
    case Date.from_iso8601(value) do
      {:ok, date} ->
        {key, date}

      {:error, _} ->
        raise ArgumentError, "#{key} must be a date like 2024-01-31, got #{inspect(value)}"
    end
  end

  defp option(key, value), do: {key, value}

  defp report_event({:package, event}, report) do
    report.(%{
      "kind" => "LOG",
      "phase" => "scrape",
      "message" => Progress.format(event),
      "step" => event.index,
      "total_steps" => event.total
    })
  end

  # The summary is the job's result; the CLI prints it from there.
  defp report_event({:done, _summary}, _report), do: :ok

  defp outcome(%{errors: [_ | _] = errors, total: 0}),
    do: {:discard, "nothing was scraped: #{Enum.join(errors, "; ")}"}

  defp outcome(summary) do
    {:ok,
     summary
     |> Map.take([:source, :out, :total, :fetched, :skipped, :rejected, :bytes, :errors])
     |> Map.put(:summary, Progress.format_summary(summary))}
  end
end
