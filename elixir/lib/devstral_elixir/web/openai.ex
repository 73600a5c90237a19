defmodule DevstralElixir.Web.OpenAI do
  @moduledoc """
  The OpenAI-compatible API: `GET /v1/models`, `GET /v1/models/ID`,
  `POST /v1/completions` (with `suffix` for fill-in-the-middle) and
  `POST /v1/chat/completions`. With `"stream": true` the answer is SSE
  `data:` chunks ending in `data: [DONE]`, written as the worker produces
  tokens.

  Models are listed under their served name (`SERVED_MODEL_NAME`, by default
  the checkpoint directory's name); requests may name the model by it or by
  the path (or hub id) the worker loaded. Each adapter loaded on it is a model
  of its own, `NAME:RUN/stageN` (as vLLM's `--lora-modules`); the plain name
  is served by the active adapter, if one is active (see
  `DevstralElixir.Web.AdaptersApi`).

  Every served id `ID` also has a retrieval-augmented twin `ID+rag`
  (`DevstralElixir.Rag.ModelId`): the worker searches its memory for the last
  user message and puts the hits into the prompt; the answer carries them in a
  top-level `sources` list of `{"source", "score", "text"}` (streamed: in the
  chunk that carries the `finish_reason`). With `RAG_REMEMBER` on, a chat
  completion that finished normally is stored in the memory afterwards
  (`DevstralElixir.Rag.Remember`).

  Errors are OpenAI-shaped JSON: 400 for malformed JSON, missing or invalid
  fields and prompts over the context length; 404 for an unknown model; 503
  while the worker is not ready.
  """

  alias DevstralElixir.Proto.{
    ChatPrompt,
    GenerateResponse,
    ListModelsRequest,
    ListModelsResponse,
    Usage
  }

  alias DevstralElixir.Rag.{Memory, ModelId, Remember}
  alias DevstralElixir.Web.{ChunkedStream, Json, OpenAIParams, Request}
  alias DevstralElixir.{Config, Worker}
  alias DevstralElixir.Worker.Error

  @doc "Routes a `/v1/...` request (the path after `v1`)."
  @spec route(String.t(), [String.t()], Request.t(), map()) :: term()
  def route("GET", ["models"], _request, context) do
    with {:ok, model} <- ready_model(context) do
      ids = model_ids(model, context) |> ModelId.with_augmented()
      Json.respond(200, %{"object" => "list", "data" => Enum.map(ids, &model_object/1)})
    end
  end

  def route("GET", ["models" | id_parts], _request, context) when id_parts != [] do
    id = Enum.join(id_parts, "/")

    with {:ok, model} <- ready_model(context),
         # The path split dropped an absolute path's leading slash.
         id = if("/" <> id == model.id, do: model.id, else: id),
         {:ok, _worker_model, served, _rag?} <- resolve_model(id, model, context) do
      Json.respond(200, model_object(served))
    end
  end

  def route("POST", ["completions"], request, context),
    do: generate(request, context, :completion)

  def route("POST", ["chat", "completions"], request, context),
    do: generate(request, context, :chat)

  def route(method, path, _request, _context) do
    Json.error(404, "no route for #{method} /v1/#{Enum.join(path, "/")}", code: "not_found")
  end

  defp generate(request, context, kind) do
    with {:ok, body} <- decode(request.body),
         {:ok, parsed} <- parse(kind, body),
         {:ok, model} <- ready_model(context),
         {:ok, worker_model, served, rag?} <- resolve_model(parsed.model, model, context) do
      settings = rag_settings(context)
      retrieval = if rag?, do: ModelId.retrieval(settings)
      request = %{parsed.request | model: worker_model, retrieval: retrieval}
      id = id(kind)

      meta = %{
        kind: kind,
        model: served,
        id: id,
        created: System.os_time(:second),
        rag?: rag?,
        sources: [],
        remember: remember(kind, settings, context.worker, id, request)
      }

      if parsed.stream,
        do: stream(context.worker, request, Map.put(meta, :include_usage, parsed.include_usage)),
        else: collect(context.worker, request, meta)
    end
  end

  # The RAG settings the web server got from `DevstralElixir.Config`; a
  # context without them (a test's) retrieves with the defaults and stores
  # nothing.
  defp rag_settings(context), do: Map.get(context, :rag) || %{remember: false}

  # What to call with the answer once a chat completion finished normally.
  defp remember(:chat, %{remember: true}, worker, id, request) do
    {:chat, %ChatPrompt{messages: messages}} = request.input
    fn answer -> Remember.store_async(worker, id, messages, answer) end
  end

  defp remember(_kind, _settings, _worker, _id, _request), do: nil

  defp decode(body) do
    case Json.decode(body) do
      {:ok, decoded} -> {:ok, decoded}
      {:error, message} -> Json.error(400, message, code: "invalid_json")
    end
  end

  defp parse(:completion, body), do: invalid_to_error(OpenAIParams.completion(body))
  defp parse(:chat, body), do: invalid_to_error(OpenAIParams.chat(body))

  defp invalid_to_error({:ok, _} = ok), do: ok
  defp invalid_to_error({:invalid, message, param}), do: Json.error(400, message, param: param)

  defp ready_model(context) do
    info = Worker.info_or_down(context.worker)

    case info do
      %{status: :ready, model: model} when model != nil ->
        {:ok, model}

      %{status: :failed, failure: failure} ->
        Json.error(
          503,
          "the default model could not be loaded (#{failure}); fix MODEL and restart, or load a model over gRPC",
          code: "model_load_failed"
        )

      %{status: status} ->
        Json.error(503, "the model worker is #{status}; try again shortly",
          code: "worker_unavailable"
        )
    end
  end

  # Clients may name the model by its served name (what /v1/models lists) or
  # by what the worker loaded (a path or a hub id), as vLLM accepts both; an
  # adapter by either followed by ":RUN/stageN"; any of these followed by
  # "+rag" for retrieval. Returns the model the worker is asked for ("" = the
  # loaded model, with its active adapter), the name answers carry, and
  # whether the request retrieves.
  defp resolve_model(name, model, context) when name in [nil, ""],
    do: {:ok, "", served_name(model, context), false}

  defp resolve_model(name, model, context) do
    {base, rag?} = ModelId.split(name)

    case resolve_base(base, model, context) do
      {:ok, worker_model, served} ->
        {:ok, worker_model, if(rag?, do: ModelId.augmented(served), else: served), rag?}

      {:not_found, adapters} ->
        Json.error(
          404,
          "the model #{inspect(name)} does not exist; available models: " <>
            (model_ids(model, context, adapters)
             |> ModelId.with_augmented()
             |> Enum.map_join(", ", &inspect/1)) <>
            " (the base model is also accepted as #{inspect(model.id)})",
          param: "model",
          code: "model_not_found"
        )
    end
  end

  defp resolve_base(name, model, context) do
    served = served_name(model, context)

    if name in [served, model.id] do
      {:ok, "", served}
    else
      adapters = loaded_adapters(model, context)

      adapter =
        Enum.find_value([served, model.id], fn prefix ->
          rest = String.replace_prefix(name, prefix <> ":", "")
          if rest != name and rest in adapters, do: rest
        end)

      if adapter,
        do: {:ok, model.id <> ":" <> adapter, served <> ":" <> adapter},
        else: {:not_found, adapters}
    end
  end

  # The served ids: the base model, then each loaded adapter as NAME:ADAPTER.
  defp model_ids(model, context, adapters \\ nil) do
    served = served_name(model, context)
    [served | Enum.map(adapters || loaded_adapters(model, context), &(served <> ":" <> &1))]
  end

  # Asked of the worker each time (not the health poll's copy), so an adapter
  # activated a moment ago is already listed.
  defp loaded_adapters(model, context) do
    case Worker.call(context.worker, "ListModels", %ListModelsRequest{}, 10_000) do
      {:ok, %ListModelsResponse{models: models}} ->
        Enum.find_value(models, [], fn m -> if m.id == model.id, do: m.loaded_adapters end)

      {:error, _} ->
        []
    end
  end

  @doc """
  The name `model` is served under: `SERVED_MODEL_NAME` for the configured
  model, else its directory name (or hub id).
  """
  @spec served_name(map(), map()) :: String.t()
  def served_name(model, context) do
    case context do
      %{model: configured, served_model_name: name}
      when is_binary(name) and configured == model.id ->
        name

      _ ->
        Config.default_served_name(model.id)
    end
  end

  defp model_object(id) do
    %{
      "id" => id,
      "object" => "model",
      "created" => 0,
      "owned_by" => "devstral-elixir"
    }
  end

  # Non-streamed: gather the deltas, answer once.
  defp collect(worker, request, meta) do
    with {:ok, ref} <- open(worker, request) do
      case gather(ref, [], nil) do
        {:ok, text, last, sources} ->
          response = Json.respond(200, final_object(%{meta | sources: sources}, text, last))
          finished(meta, text)
          response

        {:error, error} ->
          error_response(error)
      end
    end
  end

  # The sources are the first item's (the worker sends them once).
  defp gather(ref, acc, sources) do
    case Worker.await(ref) do
      {:item, %GenerateResponse{finish_reason: :FINISH_REASON_UNSPECIFIED} = item} ->
        gather(ref, [acc | item.text], sources || item.sources)

      {:item, %GenerateResponse{text: text} = last} ->
        _ = Worker.await(ref, 5_000)
        {:ok, IO.iodata_to_binary([acc | text]), last, sources || last.sources}

      :end ->
        {:error, %Error{status: :internal, message: "generation ended without a finish reason"}}

      {:error, error} ->
        {:error, error}
    end
  end

  defp final_object(%{kind: :completion} = meta, text, last) do
    meta
    |> envelope("text_completion")
    |> Map.merge(%{
      "choices" => [
        %{"index" => 0, "text" => text, "logprobs" => nil, "finish_reason" => finish(last)}
      ],
      "usage" => usage(last.usage)
    })
    |> with_sources(meta)
  end

  defp final_object(%{kind: :chat} = meta, text, last) do
    meta
    |> envelope("chat.completion")
    |> Map.merge(%{
      "choices" => [
        %{
          "index" => 0,
          "message" => %{"role" => "assistant", "content" => text},
          "logprobs" => nil,
          "finish_reason" => finish(last)
        }
      ],
      "usage" => usage(last.usage)
    })
    |> with_sources(meta)
  end

  # A +rag answer lists the memory hits the prompt was given.
  defp with_sources(object, %{rag?: true, sources: sources}),
    do: Map.put(object, "sources", Memory.hits_json(sources))

  defp with_sources(object, _meta), do: object

  # The generation finished normally: remember the exchange when asked to.
  defp finished(%{remember: nil}, _text), do: :ok
  defp finished(%{remember: remember}, text), do: remember.(text)

  # Streamed: the first event is awaited before the 200 goes out, so a prompt
  # over the context length still gets its 400.
  defp stream(worker, request, meta) do
    prepare = fn ->
      case open(worker, request) do
        {:ok, ref} ->
          case Worker.await(ref) do
            {:item, first} -> {:ok, {ref, first}}
            :end -> {:error, Json.error(500, "generation ended without output")}
            {:error, error} -> {:error, error_response(error)}
          end

        response ->
          {:error, response}
      end
    end

    case ChunkedStream.start(prepare, fn {ref, first}, emit -> produce(ref, first, meta, emit) end) do
      {:ok, pid} ->
        {:stream, 200, [{"content-type", "text/event-stream"}, {"cache-control", "no-cache"}],
         pid}

      {:error, response} ->
        response
    end
  end

  # The producer returns `{:error, reason}` when the client went away, so the
  # body process knows the connection cannot be reused.
  defp produce(ref, first, meta, emit) do
    role =
      if meta.kind == :chat,
        do: [event(chunk(meta, %{"role" => "assistant", "content" => ""}, nil))],
        else: []

    relay(ref, first, role, %{meta | sources: first.sources}, emit, [])
  end

  # Each pass writes, with one socket write, every event that is ready: the
  # items that arrived while the previous write went out are merged into one
  # delta, so a client slower than the model costs fewer writes, not tokens.
  # `answer` gathers the text only when it is to be remembered.
  defp relay(ref, %GenerateResponse{} = item, pending, meta, emit, answer) do
    {item, next} = coalesce(ref, item)
    done? = item.finish_reason != :FINISH_REASON_UNSPECIFIED
    answer = if meta.remember, do: [answer | item.text], else: answer

    events =
      cond do
        done? ->
          usage = if meta.include_usage, do: [event(usage_chunk(meta, item.usage))], else: []
          last = meta |> chunk(delta(meta, item.text), finish(item)) |> with_sources(meta)
          [event(last), usage, "data: [DONE]\n\n"]

        item.text == "" ->
          []

        true ->
          [event(chunk(meta, delta(meta, item.text), nil))]
      end

    case emit.([pending | events]) do
      :ok when done? ->
        finished(meta, IO.iodata_to_binary(answer))

      :ok ->
        case next || Worker.await(ref) do
          {:item, next_item} -> relay(ref, next_item, [], meta, emit, answer)
          :end -> emit.("data: [DONE]\n\n")
          {:error, error} -> emit.(event(%{"error" => error_body(error)}))
        end

      {:error, _} = gone ->
        Worker.cancel(ref)
        gone
    end
  end

  # Merges the items of `ref` that have already arrived into `item` (texts and
  # token ids appended; the finish reason and usage are the last one's). The
  # second element is a non-item event that arrived meanwhile, or nil.
  defp coalesce(ref, %GenerateResponse{finish_reason: :FINISH_REASON_UNSPECIFIED} = item) do
    case Worker.poll(ref) do
      :empty ->
        {item, nil}

      {:item, %GenerateResponse{} = next} ->
        coalesce(ref, %{
          next
          | text: item.text <> next.text,
            token_ids: item.token_ids ++ next.token_ids
        })

      other ->
        {item, other}
    end
  end

  defp coalesce(_ref, item), do: {item, nil}

  defp delta(%{kind: :chat}, text), do: %{"content" => text}
  defp delta(%{kind: :completion}, text), do: text

  defp chunk(%{kind: :completion} = meta, text, finish) do
    meta
    |> envelope("text_completion")
    |> Map.put("choices", [
      %{"index" => 0, "text" => text, "logprobs" => nil, "finish_reason" => finish}
    ])
  end

  defp chunk(%{kind: :chat} = meta, delta, finish) do
    meta
    |> envelope("chat.completion.chunk")
    |> Map.put("choices", [
      %{"index" => 0, "delta" => delta, "logprobs" => nil, "finish_reason" => finish}
    ])
  end

  defp usage_chunk(meta, usage) do
    object = if meta.kind == :chat, do: "chat.completion.chunk", else: "text_completion"
    meta |> envelope(object) |> Map.merge(%{"choices" => [], "usage" => usage(usage)})
  end

  defp event(object), do: ["data: ", Json.encode(object), "\n\n"]

  defp envelope(meta, object) do
    %{"id" => meta.id, "object" => object, "created" => meta.created, "model" => meta.model}
  end

  defp finish(%GenerateResponse{finish_reason: :FINISH_REASON_LENGTH}), do: "length"
  defp finish(%GenerateResponse{}), do: "stop"

  defp usage(nil), do: %{"prompt_tokens" => 0, "completion_tokens" => 0, "total_tokens" => 0}

  defp usage(%Usage{} = usage) do
    %{
      "prompt_tokens" => usage.prompt_tokens,
      "completion_tokens" => usage.completion_tokens,
      "total_tokens" => usage.total_tokens
    }
  end

  defp open(worker, request) do
    case Worker.open(worker, "Generate", request) do
      {:ok, ref} -> {:ok, ref}
      {:error, error} -> error_response(error)
    end
  end

  # The worker's queue of waiting generations is full: the client should retry
  # soon; a batch slot frees as soon as any stream finishes.
  @retry_after_s "1"

  defp error_response(%Error{} = error) do
    {status, code} = status_for(error.status)

    case Json.error(status, error.message, code: code) do
      {429, headers, body} -> {429, [{"retry-after", @retry_after_s} | headers], body}
      response -> response
    end
  end

  defp error_body(%Error{} = error) do
    {_status, code} = status_for(error.status)
    %{"message" => error.message, "type" => "server_error", "param" => nil, "code" => code}
  end

  defp status_for(:invalid_argument), do: {400, "invalid_request"}
  defp status_for(:out_of_range), do: {400, "context_length_exceeded"}
  defp status_for(:not_found), do: {404, "model_not_found"}
  defp status_for(:unavailable), do: {503, "worker_unavailable"}
  defp status_for(:resource_exhausted), do: {429, "rate_limit_exceeded"}
  defp status_for(other), do: {500, Atom.to_string(other)}

  defp id(:completion), do: "cmpl-" <> random_id()
  defp id(:chat), do: "chatcmpl-" <> random_id()
  defp random_id, do: Base.encode16(:crypto.strong_rand_bytes(12), case: :lower)
end
