defmodule DevstralElixir.Jobs.Job do
  @moduledoc """
  One job of the durable queue (`DevstralElixir.Jobs.Queue`).

  | field | meaning |
  | --- | --- |
  | `id` | positive integer, unique per data directory |
  | `type` | `:scrape`, `:build_dataset`, `:train_stage`, `:evaluate`, `:curriculum` or `:rag_ingest` |
  | `args` | a map handed to the runner (JSON-shaped when it came over HTTP) |
  | `state` | `:queued`, `:running`, `:succeeded`, `:failed` or `:cancelled` |
  | `priority` | 0 (first) to 9 (last), as in Oban; ties run oldest first |
  | `attempts` / `max_attempts` | attempts started at the current unit of work / the most allowed per unit |
  | `unit` | the unit of work the runner last announced (e.g. `"stage 2"`), or nil: the whole job |
  | `total_attempts` | attempts started over the job's whole life |
  | `scheduled_at` | a queued job does not start before this (retry backoff) |
  | `resource` | e.g. `"worker:default"`; jobs sharing a resource obey its concurrency limit |
  | `progress` | the latest progress event the runner reported (a map), or nil |
  | `error` | the last error message, or nil |
  | `result` | what the runner returned with `{:ok, result}` |
  | `parent_id` | the job that enqueued this one, or nil |
  | `pid` | the task running the current attempt (internal) |

  Attempts count per unit of work, as Oban counts per job: a runner whose job
  holds several units that can fail on their own (a curriculum's stages)
  announces each one (see `DevstralElixir.Jobs.Runner`), and moving to a new
  unit starts its `attempts` afresh.

  Times are UTC `DateTime`s. `to_json/1` gives the map the JSON API serves.
  """

  @types [:scrape, :build_dataset, :train_stage, :evaluate, :curriculum, :rag_ingest]
  @states [:queued, :running, :succeeded, :failed, :cancelled]

  defstruct [
    :id,
    :type,
    :resource,
    :progress,
    :error,
    :result,
    :inserted_at,
    :updated_at,
    :scheduled_at,
    :started_at,
    :finished_at,
    :parent_id,
    :pid,
    :unit,
    args: %{},
    state: :queued,
    priority: 0,
    attempts: 0,
    total_attempts: 0,
    max_attempts: 3
  ]

  @type type ::
          :scrape | :build_dataset | :train_stage | :evaluate | :curriculum | :rag_ingest
  @type state :: :queued | :running | :succeeded | :failed | :cancelled
  @type id :: pos_integer()

  @type t :: %__MODULE__{
          id: id() | nil,
          type: type(),
          args: map(),
          state: state(),
          priority: 0..9,
          attempts: non_neg_integer(),
          total_attempts: non_neg_integer(),
          unit: String.t() | nil,
          max_attempts: pos_integer(),
          scheduled_at: DateTime.t() | nil,
          resource: String.t() | nil,
          progress: map() | nil,
          error: String.t() | nil,
          result: term(),
          inserted_at: DateTime.t() | nil,
          updated_at: DateTime.t() | nil,
          started_at: DateTime.t() | nil,
          finished_at: DateTime.t() | nil,
          parent_id: id() | nil,
          pid: pid() | nil
        }

  @doc "The job types."
  @spec types() :: [type()]
  def types, do: @types

  @doc "The job states."
  @spec states() :: [state()]
  def states, do: @states

  @doc "True for the states a job never leaves."
  @spec final?(t() | state()) :: boolean()
  def final?(%__MODULE__{state: state}), do: final?(state)
  def final?(state), do: state in [:succeeded, :failed, :cancelled]

  @doc """
  A job type from an atom or its name (`"build_dataset"`); `:error` for anything else.
  Never creates atoms.
  """
  @spec parse_type(term()) :: {:ok, type()} | :error
  def parse_type(type) when type in @types, do: {:ok, type}

  def parse_type(name) when is_binary(name) do
    Enum.find_value(@types, :error, fn type ->
      if Atom.to_string(type) == name, do: {:ok, type}
    end)
  end

  def parse_type(_other), do: :error

  @doc "A job state from an atom or its name; `:error` for anything else."
  @spec parse_state(term()) :: {:ok, state()} | :error
  def parse_state(state) when state in @states, do: {:ok, state}

  def parse_state(name) when is_binary(name) do
    Enum.find_value(@states, :error, fn s -> if Atom.to_string(s) == name, do: {:ok, s} end)
  end

  def parse_state(_other), do: :error

  @doc """
  The job as a JSON-ready map with string keys. Terms JSON cannot hold (pids,
  tuples, references) inside `args`, `progress` and `result` are rendered with
  `inspect/1`, so any job can be served.
  """
  @spec to_json(t()) :: map()
  def to_json(%__MODULE__{} = job) do
    %{
      "id" => job.id,
      "type" => Atom.to_string(job.type),
      "state" => Atom.to_string(job.state),
      "args" => json_safe(job.args),
      "priority" => job.priority,
      "attempts" => job.attempts,
      "max_attempts" => job.max_attempts,
      "total_attempts" => job.total_attempts,
      "unit" => job.unit,
      "resource" => job.resource,
      "progress" => json_safe(job.progress),
      "error" => job.error,
      "result" => json_safe(job.result),
      "parent_id" => job.parent_id,
      "scheduled_at" => iso8601(job.scheduled_at),
      "inserted_at" => iso8601(job.inserted_at),
      "updated_at" => iso8601(job.updated_at),
      "started_at" => iso8601(job.started_at),
      "finished_at" => iso8601(job.finished_at)
    }
  end

  @doc """
  Converts a term into one JSON can encode: map keys become strings, atoms
  (other than `true`, `false` and `nil`) become strings, tuples and other
  terms are inspected. Non-finite floats cannot occur in Erlang terms.
  """
  @spec json_safe(term()) :: term()
  def json_safe(term) when is_map(term) and not is_struct(term) do
    Map.new(term, fn {key, value} -> {json_key(key), json_safe(value)} end)
  end

  def json_safe(%DateTime{} = time), do: DateTime.to_iso8601(time)
  def json_safe(%_{} = struct), do: struct |> Map.from_struct() |> json_safe()
  def json_safe(term) when is_list(term), do: Enum.map(term, &json_safe/1)
  def json_safe(term) when is_boolean(term) or is_nil(term), do: term
  def json_safe(term) when is_atom(term), do: Atom.to_string(term)
  def json_safe(term) when is_number(term), do: term

  def json_safe(term) when is_binary(term) do
    if String.valid?(term), do: term, else: inspect(term)
  end

  def json_safe(term), do: inspect(term)

  defp json_key(key) when is_binary(key), do: key
  defp json_key(key) when is_atom(key), do: Atom.to_string(key)
  defp json_key(key), do: inspect(key)

  defp iso8601(nil), do: nil
  defp iso8601(%DateTime{} = time), do: DateTime.to_iso8601(time)
end
