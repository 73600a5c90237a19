defmodule DevstralElixir.Scrape.Batch do
  @moduledoc """
  Runs a batch of per-package work of a scrape: concurrently and bounded
  (`Task.async_stream/3` with `max_concurrency`), reporting each outcome to
  the progress function, logging why packages were rejected, recording
  skips in `skipped.jsonl` and adding everything up into the summary.

  The work function returns one outcome or a list of them:
    * `{:ok, %{name, version, files, bytes, downloaded}}` (the package is
      already published and in the manifest);
    * `{:skipped, %{name, version, reason, detail}}`;
    * `{:rejected, %{name, version, reason, detail}}` (optionally with
      `downloaded` bytes).
  An exception in the work function rejects that package alone
  (reason `:internal`). The tasks are linked to the caller, so killing the
  caller stops them too.
  """

  require Logger

  alias DevstralElixir.Scrape.Workspace

  @type outcome :: {:ok | :skipped | :rejected, map()}

  @doc "A summary with nothing done yet."
  @spec empty_summary(String.t(), Path.t()) :: map()
  def empty_summary(source, out) do
    %{
      source: source,
      out: out,
      total: 0,
      fetched: 0,
      skipped: 0,
      skipped_by: %{},
      rejected: %{},
      bytes: 0,
      downloaded_bytes: 0,
      failures: [],
      errors: []
    }
  end

  @doc """
  Runs `work` over `items`. Options: `source`, `out`, `concurrency`,
  `progress` (a `DevstralElixir.Scrape.Progress.fun()`), `label` (item ->
  `{name, version}`, for reporting a crash), `summary` (to start from).
  """
  @spec run(Enumerable.t(), (term() -> outcome() | [outcome()]), keyword()) :: map()
  def run(items, work, opts) do
    opts =
      Keyword.validate!(opts, [
        :source,
        :out,
        :progress,
        :summary,
        concurrency: 4,
        label: &default_label/1
      ])

    items = Enum.to_list(items)
    total = length(items)
    summary = %{(opts[:summary] || empty_summary(opts[:source], opts[:out])) | total: total}

    items
    |> Enum.with_index(1)
    |> Task.async_stream(fn {item, _} -> guarded(work, item, opts[:label]) end,
      max_concurrency: opts[:concurrency],
      ordered: false,
      timeout: :infinity
    )
    |> Enum.reduce({summary, 0}, fn {:ok, outcomes}, {summary, index} ->
      index = index + 1
      summary = Enum.reduce(List.wrap(outcomes), summary, &report(&1, index, total, &2, opts))
      {summary, index}
    end)
    |> elem(0)
    |> Map.update!(:failures, &Enum.reverse/1)
  end

  @doc """
  Ends a scrape: puts the run's own `errors` (a failed listing, unknown
  names) into `summary`, reports it to `progress` as `{:done, summary}` and
  returns it.
  """
  @spec finish(map(), DevstralElixir.Scrape.Progress.fun(), [String.t()]) :: map()
  def finish(summary, progress, errors \\ []) do
    summary = %{summary | errors: errors}
    progress.({:done, summary})
    summary
  end

  defp default_label(item), do: {inspect(item), nil}

  defp guarded(work, item, label) do
    work.(item)
  rescue
    exception ->
      detail = Exception.format(:error, exception, __STACKTRACE__) |> String.slice(0, 2000)
      internal(label, item, detail)
  catch
    kind, reason -> internal(label, item, inspect({kind, reason}, limit: 20))
  end

  defp internal(label, item, detail) do
    {name, version} =
      try do
        label.(item)
      rescue
        _ -> {inspect(item, limit: 5, printable_limit: 100), nil}
      end

    {:rejected, %{name: name, version: version, reason: :internal, detail: detail}}
  end

  defp report({status, info}, index, total, summary, opts) do
    event = Map.merge(info, %{index: index, total: total, status: status})
    opts[:progress].({:package, event})
    downloaded = Map.get(info, :downloaded, 0)
    summary = %{summary | downloaded_bytes: summary.downloaded_bytes + downloaded}

    case status do
      :ok ->
        %{summary | fetched: summary.fetched + 1, bytes: summary.bytes + info.bytes}

      :skipped ->
        if info.reason != :already_fetched, do: record(opts[:out], "skipped", info)

        %{
          summary
          | skipped: summary.skipped + 1,
            skipped_by: Map.update(summary.skipped_by, info.reason, 1, &(&1 + 1))
        }

      :rejected ->
        Logger.warning(
          "#{opts[:source]}: rejected #{info.name} #{info.version}: #{info.reason}: #{info.detail}"
        )

        record(opts[:out], "rejected", info)

        failure = Map.take(info, [:name, :version, :reason, :detail])

        %{
          summary
          | rejected: Map.update(summary.rejected, info.reason, 1, &(&1 + 1)),
            failures: [failure | summary.failures]
        }
    end
  end

  defp record(out, status, info) do
    Workspace.record_skip(out, %{
      "name" => info.name,
      "version" => info.version,
      "status" => status,
      "reason" => Atom.to_string(info.reason),
      "detail" => Map.get(info, :detail),
      "at" => Workspace.now()
    })
  end
end
