defmodule DevstralElixir.Curriculum.Activation do
  @moduledoc """
  Activating a curriculum run's final promoted adapter (`mix curriculum.run
  --activate`): which adapter that is, read from the run's result, and the
  activation itself on a worker this process owns.

  A run's result (`DevstralElixir.Curriculum.RunRecord.summary/4`, atom keys
  fresh or string keys in a job's JSON) names the promoted stage's adapter
  directory, `adapters_dir/RUN/stageN`; the worker's adapter registry names
  it `RUN/stageN`. Activation on a running host goes through its API (see
  `Mix.Tasks.Adapters.activate/1`); `activate_on_worker/3` is the same
  worker RPC (`ActivateAdapter`) for the worker a Mix task started itself,
  and answers in the same JSON form as `POST /api/adapters/activate`.
  """

  alias DevstralElixir.Proto.ActivateAdapterRequest
  alias DevstralElixir.Worker
  alias DevstralElixir.Worker.Error
  alias DevstralElixir.Web.AdaptersApi

  # Loading the adapter and smoke-testing it on a big model takes a while.
  @activate_timeout_ms 600_000

  @doc """
  The registry name (`RUN/stageN`) of the last promoted stage's adapter in a
  run's `result`: `{:ok, name}`; `:none` when no stage was promoted; or
  `{:error, message}` when the result names an adapter outside its run's
  directory (so it has no registry name).
  """
  @spec promoted(map()) :: {:ok, String.t()} | :none | {:error, String.t()}
  def promoted(result) when is_map(result) do
    adapter = get(result, :promoted_adapter)
    run_dir = get(result, :run_dir)

    cond do
      adapter in [nil, ""] ->
        :none

      not is_binary(run_dir) or run_dir == "" ->
        {:error, "the run's result names adapter #{adapter} but not the run's directory"}

      Path.relative_to(adapter, run_dir) == adapter or
          Path.expand(adapter) == Path.expand(run_dir) ->
        {:error, "the promoted adapter #{adapter} is not inside the run's directory #{run_dir}"}

      true ->
        {:ok, Path.join(Path.basename(run_dir), Path.relative_to(adapter, run_dir))}
    end
  end

  @doc """
  Activates adapter `name` on `worker` (a `DevstralElixir.Worker` server)
  with the `ActivateAdapter` RPC: blue-green, smoke-tested, and recorded by
  the worker in `DATA_DIR/adapters/active.json`, so the next worker started
  on that data directory serves it. Waits (up to `timeout`) for the worker
  to have loaded its default model first. Returns the answer in the JSON form of
  `POST /api/adapters/activate` (`"active"`, `"previous"`, `"smoke_test"`),
  or `{:error, message}` with the worker's reason for refusing.
  """
  @spec activate_on_worker(GenServer.server(), String.t(), timeout()) ::
          {:ok, map()} | {:error, String.t()}
  def activate_on_worker(worker, name, timeout \\ @activate_timeout_ms) do
    request = %ActivateAdapterRequest{adapter: name}

    # The worker serves its default model once it has loaded; until then it
    # answers "still loading" (a short run can end before that).
    with :ok <- Worker.await_ready(worker, timeout),
         {:ok, reply} <- Worker.call(worker, "ActivateAdapter", request, timeout) do
      {:ok, AdaptersApi.activation_json(reply)}
    else
      {:error, %Error{} = error} -> {:error, Exception.message(error)}
    end
  catch
    :exit, {reason, {GenServer, :call, _}} when reason in [:noproc, :shutdown, :normal] ->
      {:error, "the model worker is not running"}
  end

  defp get(map, key), do: Map.get(map, key, Map.get(map, Atom.to_string(key)))
end
