defmodule DevstralElixir.Rag.IngestRunner do
  @moduledoc """
  The `:rag_ingest` job: the worker's `Ingest` (conversation logs, Markdown,
  Elixir files → chunks → the memory), run through
  `DevstralElixir.Worker.JobStream` with its progress published to the job's
  subscribers. `mix rag.ingest` enqueues it.

  Args (JSON): `"paths"` (absolute paths of files or directories; the client
  expands them) and optionally `"collection"` (default `conversations`).

  The result is `{"metrics": {...}, "message": TEXT, "skipped": [TEXT, ...]}`:
  the worker's counts from its `COMPLETED` event, and the first
  200 skipped-line notes (the `LOG` events `skipped FILE:LINE: reason`;
  the worker logs the first 20 of a file, the count in the metrics is
  complete), so a client that polled past some of them still sees them.
  Ingesting is idempotent (point ids are content hashes), so a retried job
  adds nothing twice.
  """
  @behaviour DevstralElixir.Jobs.Runner

  alias DevstralElixir.Jobs.Job
  alias DevstralElixir.Proto.IngestRequest
  alias DevstralElixir.Rag.Memory
  alias DevstralElixir.Worker.JobStream

  @max_skipped 200

  @doc """
  Checks job args and builds the `IngestRequest`: `{:ok, request}` or
  `{:error, message}` naming the field (a missing or relative path, a bad
  collection name).
  """
  @spec request(map(), String.t()) :: {:ok, IngestRequest.t()} | {:error, String.t()}
  def request(args, job_id) do
    with {:ok, paths} <- paths(args["paths"]),
         {:ok, collection} <- Memory.check_collection(args["collection"]) do
      {:ok, %IngestRequest{job_id: job_id, paths: paths, collection: collection}}
    end
  end

  @impl true
  def validate_args(args) do
    with {:ok, _request} <- request(args, "validate"), do: :ok
  end

  # Its own resource, not the generation worker's: ingesting only embeds, and
  # must not wait behind a training run; two ingests run one after the other.
  @impl true
  def resource(_args), do: "worker:memory"

  @impl true
  def cancel(%Job{id: id}), do: JobStream.cancel(JobStream.host_worker(), job_id(id))

  @impl true
  def run(%Job{id: id, args: args}, report) do
    case request(args, job_id(id)) do
      {:ok, request} -> ingest(request, report)
      {:error, message} -> {:discard, message}
    end
  end

  defp ingest(request, report) do
    # The events arrive in this process, one after the other.
    Process.put(__MODULE__, [])

    collect = fn event ->
      if skipped?(event), do: Process.put(__MODULE__, [event.message | Process.get(__MODULE__)])
      report.(event)
    end

    result = JobStream.run(JobStream.host_worker(), "Ingest", request, collect)
    skipped = __MODULE__ |> Process.delete() |> Enum.reverse() |> Enum.take(@max_skipped)

    case result do
      {:ok, done} ->
        {:ok, %{"metrics" => done.metrics, "message" => done.message, "skipped" => skipped}}

      {:invalid, message} ->
        {:discard, message}

      {:error, message} ->
        {:error, message}
    end
  end

  @doc "True for the event that reports a skipped (malformed) input line."
  @spec skipped?(map()) :: boolean()
  def skipped?(%{kind: "LOG", message: "skipped " <> _}), do: true
  def skipped?(_event), do: false

  defp paths([_ | _] = paths) do
    Enum.reduce_while(paths, {:ok, []}, fn
      path, {:ok, acc} when is_binary(path) ->
        cond do
          Path.type(path) != :absolute ->
            {:halt, {:error, "paths: #{inspect(path)} is not an absolute path"}}

          not File.exists?(path) ->
            {:halt, {:error, "paths: #{path} does not exist"}}

          true ->
            {:cont, {:ok, acc ++ [path]}}
        end

      other, _acc ->
        {:halt, {:error, "paths must hold strings, got #{inspect(other)}"}}
    end)
  end

  defp paths(_), do: {:error, "paths must be a non-empty list of files or directories"}

  defp job_id(id), do: "job-#{id}-ingest"
end
