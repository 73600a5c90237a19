defmodule DevstralElixir.Scrape.CLI do
  @moduledoc """
  What the `mix scrape.*` tasks share: strict flag parsing with clear
  errors, value conversion, starting the OTP applications the scrapers
  need, and the exit status of a finished run.
  """

  @doc """
  Parses `args` with `OptionParser`'s strict mode. An unknown flag or a
  value of the wrong type raises `Mix.Error` naming the flag.
  """
  @spec parse!(String.t(), [String.t()], keyword(), keyword()) :: {keyword(), [String.t()]}
  def parse!(task, args, switches, aliases \\ []) do
    case OptionParser.parse(args, strict: switches, aliases: aliases) do
      {parsed, rest, []} ->
        {parsed, rest}

      {_parsed, _rest, [{flag, value} | _]} ->
        known = flag |> String.trim_leading("-") |> String.replace("-", "_")

        cond do
          not Enum.any?(switches, fn {name, _} -> Atom.to_string(name) == known end) ->
            Mix.raise("mix #{task}: unknown option #{flag} (see `mix help #{task}`)")

          value == nil ->
            Mix.raise("mix #{task}: #{flag} needs a value")

          true ->
            Mix.raise("mix #{task}: invalid value #{inspect(value)} for #{flag}")
        end
    end
  end

  @doc "`parse!/3` for a task without positional arguments: raises when any are given."
  @spec parse_flags!(String.t(), [String.t()], keyword()) :: keyword()
  def parse_flags!(task, args, switches) do
    {flags, rest} = parse!(task, args, switches)
    if rest != [], do: Mix.raise("mix #{task}: unexpected arguments #{Enum.join(rest, " ")}")
    flags
  end

  @doc "The switches of the caps on the kept files (`--max-bytes`, `--max-file-bytes`, `--max-files`)."
  @spec cap_switches() :: keyword()
  def cap_switches, do: [max_bytes: :integer, max_file_bytes: :integer, max_files: :integer]

  @doc "The caps given among `flags` (see `cap_switches/0`), each checked with `positive!/3`."
  @spec caps!(String.t(), keyword()) :: keyword()
  def caps!(task, flags) do
    [
      max_bytes: positive!(task, "--max-bytes", flags[:max_bytes]),
      max_file_bytes: positive!(task, "--max-file-bytes", flags[:max_file_bytes]),
      max_files: positive!(task, "--max-files", flags[:max_files])
    ]
  end

  @doc "Raises unless `value` (when given) is a positive integer."
  @spec positive!(String.t(), String.t(), integer() | nil) :: pos_integer() | nil
  def positive!(_task, _flag, nil), do: nil
  def positive!(_task, _flag, value) when is_integer(value) and value > 0, do: value

  def positive!(task, flag, value),
    do: Mix.raise("mix #{task}: #{flag} must be a positive integer, got #{value}")

  @doc "Parses a `YYYY-MM-DD` date or raises naming the flag."
  @spec date!(String.t(), String.t(), String.t() | nil) :: Date.t() | nil
  def date!(_task, _flag, nil), do: nil

  def date!(task, flag, value) do
    case Date.from_iso8601(value) do
      {:ok, date} ->
        date

      {:error, _} ->
        Mix.raise("mix #{task}: #{flag} must be a date like 2024-01-31, got #{inspect(value)}")
    end
  end

  @doc "Splits a comma-separated list (`nil` stays `nil`)."
  @spec list(String.t() | nil) :: [String.t()] | nil
  def list(nil), do: nil
  def list(value), do: value |> String.split(",", trim: true) |> Enum.map(&String.trim/1)

  @doc "The interval in milliseconds between requests for a rate per minute."
  @spec interval(pos_integer()) :: non_neg_integer()
  def interval(per_minute), do: div(60_000 + per_minute - 1, per_minute)

  @doc "Keeps only the options that were given (drops `nil` values)."
  @spec given(keyword()) :: keyword()
  def given(opts), do: Enum.reject(opts, fn {_k, v} -> is_nil(v) end)

  @doc "Loads the project configuration and starts what the scrapers use (inets, ssl), not the host's services."
  @spec start!() :: :ok
  def start! do
    Mix.Task.run("app.config")

    unless Code.ensure_loaded?(:jiffy),
      do: Mix.raise("the Erlang library jiffy is missing: apt-get install erlang-jiffy")

    for app <- [:crypto, :public_key, :ssl, :inets],
        do: {:ok, _} = Application.ensure_all_started(app)

    :ok
  end

  @doc "Raises when a run could not do anything at all (e.g. the listing failed)."
  @spec finish!(String.t(), map()) :: map()
  def finish!(task, summary) do
    if summary.errors != [] and summary.total == 0,
      do: Mix.raise("mix #{task}: nothing was scraped: #{Enum.join(summary.errors, "; ")}")

    summary
  end
end
