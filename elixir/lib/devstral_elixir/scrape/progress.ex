defmodule DevstralElixir.Scrape.Progress do
  @moduledoc """
  Progress events of a scrape and their one-line text form, e.g.
  `[12/100] jason 1.4.4 ok 23 files`.

  A run calls its progress function with `{:package, event}` for each
  package outcome and `{:done, summary}` at the end. `event` is a map with
  `index`, `total`, `name`, `version`, `status` (`:ok`, `:skipped` or
  `:rejected`) and `files`, `bytes`, `reason`, `detail` as they apply.
  """

  @type event :: %{
          required(:index) => pos_integer(),
          required(:total) => non_neg_integer(),
          required(:name) => String.t(),
          required(:version) => String.t() | nil,
          required(:status) => :ok | :skipped | :rejected,
          optional(:files) => non_neg_integer(),
          optional(:bytes) => non_neg_integer(),
          optional(:reason) => atom(),
          optional(:detail) => String.t()
        }

  @type fun :: ({:package, event()} | {:done, map()} -> any())

  @doc "A progress function that ignores every event."
  @spec silent() :: fun()
  def silent, do: fn _ -> :ok end

  @doc "A progress function printing each line with `IO.puts/2` to `device`."
  @spec printer(IO.device()) :: fun()
  def printer(device \\ :stdio) do
    fn
      {:package, event} -> IO.puts(device, format(event))
      {:done, summary} -> IO.puts(device, format_summary(summary))
    end
  end

  @doc "The line for a package event."
  @spec format(event()) :: String.t()
  def format(event) do
    head =
      "[#{event.index}/#{event.total}] #{event.name}" <>
        if(event[:version], do: " #{event.version}", else: "")

    case event.status do
      :ok -> "#{head} ok #{event.files} files"
      :skipped -> "#{head} skipped #{event.reason}" <> detail(event)
      :rejected -> "#{head} rejected #{event.reason}" <> detail(event)
    end
  end

  defp detail(%{detail: detail}) when is_binary(detail) and detail != "", do: ": " <> detail
  defp detail(_), do: ""

  @doc "The final summary line: fetched, skipped, rejected by reason, bytes."
  @spec format_summary(map()) :: String.t()
  def format_summary(summary) do
    rejected = Enum.sum(Map.values(summary.rejected))

    reasons =
      summary.rejected
      |> Enum.sort()
      |> Enum.map_join(", ", fn {reason, count} -> "#{reason} #{count}" end)

    skipped_reasons =
      summary.skipped_by
      |> Enum.sort()
      |> Enum.map_join(", ", fn {reason, count} -> "#{reason} #{count}" end)

    "#{summary.source}: fetched #{summary.fetched}, " <>
      "skipped #{summary.skipped}#{if skipped_reasons != "", do: " (#{skipped_reasons})"}, " <>
      "rejected #{rejected}#{if reasons != "", do: " (#{reasons})"}, " <>
      "#{summary.bytes} bytes kept, #{summary.downloaded_bytes} bytes downloaded -> #{summary.out}" <>
      if(summary.errors == [], do: "", else: "; errors: " <> Enum.join(summary.errors, "; "))
  end
end
