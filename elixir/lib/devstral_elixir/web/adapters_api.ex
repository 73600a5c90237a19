defmodule DevstralElixir.Web.AdaptersApi do
  @moduledoc """
  The trained adapters' JSON API, over the worker's adapter registry:

    * `GET /api/adapters` - `{"adapters": [...], "active": NAME, "previous":
      NAME, "base_model": ID}`: every adapter under `DATA_DIR/adapters`
      (name `RUN/stageN`, its model id `SERVED:RUN/stageN`, run, stage, base
      model, rank, created_at, metrics, gate verdict, promoted, loaded,
      active, previous, last smoke test); `""` means the plain base model;
    * `POST /api/adapters/activate` with `{"adapter": ID}` - blue-green
      activation (load beside the live one, smoke-test, switch, keep the
      previous loaded); `ID` is a name or a model id, `""` deactivates;
    * `POST /api/adapters/rollback` - the previous adapter becomes active again.

  Both POSTs need the admin token (`authorization: Bearer <ADMIN_TOKEN>`,
  see `DevstralElixir.Jobs.AdminToken`): they change what every client is
  served. Worker errors map to 404 (unknown adapter), 409 (refused: wrong
  base model, unreadable weights, failed smoke test, nothing to roll back),
  400 (bad name) and 503 (worker not up).
  """

  alias DevstralElixir.Jobs.AdminToken

  alias DevstralElixir.Proto.{
    ActivateAdapterRequest,
    ActivateAdapterResponse,
    ListAdaptersRequest,
    RollbackAdapterRequest,
    SmokeTest
  }

  alias DevstralElixir.Web.{AdminOnly, Json, OpenAI, Request}
  alias DevstralElixir.Worker

  # What the worker's statuses mean for an adapter call.
  @adapter_errors %{
    not_found: {404, "adapter_not_found"},
    failed_precondition: {409, "adapter_refused"}
  }

  # Loading an adapter and its smoke test (a few short generations) on a big
  # model on a busy GPU take a while; the client waits for the verdict.
  @activate_timeout_ms 600_000

  @doc """
  Handles a request under `/api/adapters`. `context` is the router's (the
  worker); options (for tests): `:admin_token` (the `AdminToken` server).
  """
  @spec handle(Request.t(), map(), keyword()) :: Request.response()
  def handle(%Request{} = request, context, opts \\ []) do
    opts = Keyword.validate!(opts, admin_token: AdminToken)
    route(request.method, request.path, request, context, opts)
  catch
    # The worker process is not running (the host is starting or stopping).
    :exit, {reason, {GenServer, :call, _}} when reason in [:noproc, :shutdown, :normal] ->
      Json.error(503, "the model worker is not running", code: "worker_unavailable")
  end

  defp route("GET", ["api", "adapters"], _request, context, _opts), do: index(context)

  defp route("POST", ["api", "adapters", "activate"], request, context, opts),
    do: AdminOnly.run(request, opts, fn -> activate(request, context) end)

  defp route("POST", ["api", "adapters", "rollback"], request, context, opts),
    do: AdminOnly.run(request, opts, fn -> rollback(context) end)

  defp route(method, ["api", "adapters"], _request, _context, _opts),
    do: Json.method_not_allowed(method, "GET")

  defp route(method, ["api", "adapters", action], _request, _context, _opts)
       when action in ["activate", "rollback"],
       do: Json.method_not_allowed(method, "POST")

  defp route(method, path, _request, _context, _opts) do
    Json.error(404, "no route for #{method} /#{Enum.join(path, "/")}", code: "not_found")
  end

  defp index(context) do
    case listing(context) do
      {:ok, listing} -> Json.respond(200, listing)
      {:error, response} -> response
    end
  end

  @doc """
  The registry as `GET /api/adapters` serves it (the web UI's adapters page
  shows the same), or the error response.
  """
  @spec listing(map()) :: {:ok, map()} | {:error, Request.response()}
  def listing(context) do
    case Worker.call(context.worker, "ListAdapters", %ListAdaptersRequest{}, 60_000) do
      {:ok, listing} ->
        served = served(context)

        {:ok,
         %{
           "adapters" => Enum.map(listing.adapters, &adapter_json(&1, served)),
           "active" => listing.active,
           "previous" => listing.previous,
           "base_model" => listing.base_model
         }}

      {:error, error} ->
        {:error, Json.worker_error(error, @adapter_errors)}
    end
  catch
    :exit, {reason, {GenServer, :call, _}} when reason in [:noproc, :shutdown, :normal] ->
      {:error, Json.error(503, "the model worker is not running", code: "worker_unavailable")}
  end

  defp activate(request, context) do
    with {:ok, name} <- adapter_field(request.body), do: activate_adapter(context, name)
  end

  defp rollback(context), do: rollback_adapter(context)

  @doc """
  Activates an adapter by name or model id (`""`: the base model), as
  `POST /api/adapters/activate` does once its caller is known to be admin.
  """
  @spec activate_adapter(map(), String.t()) :: Request.response()
  def activate_adapter(context, name) when is_binary(name) do
    context.worker
    |> Worker.call(
      "ActivateAdapter",
      %ActivateAdapterRequest{adapter: name},
      @activate_timeout_ms
    )
    |> activation()
  end

  @doc "Makes the previous adapter active again, as `POST /api/adapters/rollback` does."
  @spec rollback_adapter(map()) :: Request.response()
  def rollback_adapter(context) do
    context.worker
    |> Worker.call("RollbackAdapter", %RollbackAdapterRequest{}, @activate_timeout_ms)
    |> activation()
  end

  defp activation({:ok, reply}), do: Json.respond(200, activation_json(reply))

  defp activation({:error, error}), do: Json.worker_error(error, @adapter_errors)

  defp adapter_json(adapter, served) do
    %{
      "name" => adapter.name,
      "id" => if(served, do: served <> ":" <> adapter.name, else: adapter.name),
      "path" => adapter.path,
      "run" => adapter.run,
      "stage" => adapter.stage,
      "base_model" => adapter.base_model,
      "rank" => adapter.rank,
      "created_at" => adapter.created_at,
      "metrics" => decode_or_nil(adapter.metrics_json),
      "gate_passed" => adapter.gate_passed,
      "gate" => decode_or_nil(adapter.gate_json),
      "promoted" => adapter.promoted,
      "loaded" => adapter.loaded,
      "active" => adapter.active,
      "previous" => adapter.previous,
      "smoke_test" => smoke_json(adapter.smoke_test)
    }
  end

  @doc """
  The JSON shape of an activation or rollback answer: the active and the
  previous adapter and the smoke test. `mix curriculum.run --activate` prints
  the same shape when it activates through an in-process worker.
  """
  @spec activation_json(ActivateAdapterResponse.t()) :: map()
  def activation_json(reply) do
    %{
      "active" => reply.active,
      "previous" => reply.previous,
      "smoke_test" => smoke_json(reply.smoke_test)
    }
  end

  defp smoke_json(nil), do: nil

  defp smoke_json(%SmokeTest{} = smoke) do
    %{
      "generated" => smoke.generated,
      "parsed" => smoke.parsed,
      "prompts" => smoke.prompts,
      "require_parse" => smoke.require_parse,
      "note" => smoke.note
    }
  end

  defp decode_or_nil(""), do: nil

  defp decode_or_nil(text) do
    case Json.decode(text) do
      {:ok, value} -> value
      {:error, _} -> nil
    end
  end

  # The base model's served name, for the adapters' model ids; nil while no
  # model is loaded.
  defp served(context) do
    case Worker.info_or_down(context.worker) do
      %{model: model} when model != nil -> OpenAI.served_name(model, context)
      _ -> nil
    end
  end

  defp adapter_field(body) do
    case Json.decode(body) do
      {:ok, %{"adapter" => name} = map} when is_binary(name) and map_size(map) == 1 ->
        {:ok, name}

      {:ok, %{"adapter" => other}} when not is_binary(other) ->
        Json.error(400, "adapter must be a string, got #{Json.encode(other)}", param: "adapter")

      {:ok, %{} = map} when is_map_key(map, "adapter") ->
        [field | _] = Map.keys(map) -- ["adapter"]
        Json.error(400, "unknown field #{inspect(field)}; known: adapter", param: field)

      {:ok, _} ->
        Json.error(400, ~s(the body must be a JSON object {"adapter": ID}), param: "adapter")

      {:error, message} ->
        Json.error(400, message, code: "invalid_json")
    end
  end
end
