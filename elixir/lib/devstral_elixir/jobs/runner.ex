defmodule DevstralElixir.Jobs.Runner do
  @moduledoc """
  The behaviour of a job type's runner. The queue calls `c:run/2` in a task
  under its task supervisor, never in the queue process.

    * `{:ok, result}` - the job succeeded; `result` is stored on the job.
    * `{:error, reason}` - the attempt failed; the job is retried with
      exponential backoff until `max_attempts`.
    * `{:discard, reason}` - the job failed for good (invalid arguments, a
      failed promotion gate): no retry.

  A raise, a throw or an exit of the task counts as `{:error, reason}`.

  `report` publishes a progress map to the job's subscribers and stores it as
  the job's latest progress. `report.({:unit, name})` instead tells the queue
  that the attempt has moved on to the unit of work `name` (a curriculum's
  `"stage 2"`): attempts are counted per unit, so when the name differs from
  the unit announced before, the job's `attempts` starts again at 1 (this
  attempt) and `max_attempts` applies to the new unit afresh. The first
  announcement of a job only names its unit. Announce a unit only when work
  on it really starts (not for a finished unit a retry skips), and before
  that work can fail. A runner must be safe to run again after a crash
  or a host restart: it is re-run from the start with `job.attempts`
  incremented, and should pick up its own on-disk state (checkpoints,
  finished stages) rather than redo work.

  Optional callbacks:

    * `c:cancel/1` - called (in a separate task) when a running job is
      cancelled, before its task is killed; tell external processes to stop.
    * `c:resource/1` - the resource the job needs when the enqueuer names
      none (e.g. `"worker:default"`), or nil.
    * `c:validate_args/1` - checked at enqueue; an error rejects the job.
  """

  alias DevstralElixir.Jobs.Job

  @type report :: (map() | {:unit, String.t()} -> :ok)

  @callback run(Job.t(), report()) :: {:ok, term()} | {:error, term()} | {:discard, term()}
  @callback cancel(Job.t()) :: :ok
  @callback resource(args :: map()) :: String.t() | nil
  @callback validate_args(args :: map()) :: :ok | {:error, String.t()}

  @optional_callbacks cancel: 1, resource: 1, validate_args: 1
end
