defmodule DevstralElixir.Web.Embeddings do
  @moduledoc """
  `POST /v1/embeddings`, shaped like OpenAI's, answered by the worker's `Embed`.

  Request: `{"model": "all-MiniLM-L6-v2", "input": STRING | [STRING, ...],
  "encoding_format": "float" | "base64", "dimensions": 384}`; only `input` is
  required, `model` defaults to the one embedding model, `encoding_format` to
  `"float"`. `base64` is the little-endian float32 array, as OpenAI sends it.
  Unknown fields (`user`, ...) are ignored, as OpenAI clients send many.

  Only the worker's default embedder is served here: the worker also accepts a
  checkpoint path, but a path from an HTTP client would let it probe the host's
  file system, so no other model name is accepted.

  Errors are OpenAI-shaped: 400 naming the `param` for a bad field, 404 for
  another model, and the worker's own errors mapped as for chat.
  """

  alias DevstralElixir.Proto.{EmbedRequest, EmbedResponse}
  alias DevstralElixir.Web.{Json, Request}
  alias DevstralElixir.Worker
  alias DevstralElixir.Worker.Error

  @model "all-MiniLM-L6-v2"
  @dimensions 384
  # The worker's cap (python_worker/rag/embedder.py MAX_TEXTS), checked here
  # too so the client hears about `input`, the field it sent.
  @max_inputs 2048
  # The first call loads the model; a full batch of long texts takes a while on a CPU.
  @timeout_ms 300_000

  @doc "The embedding model's id, as requests name it."
  @spec model_id() :: String.t()
  def model_id, do: @model

  @doc "Handles `POST /v1/embeddings`."
  @spec create(Request.t(), map()) :: Request.response()
  def create(%Request{} = request, context) do
    with {:ok, body} <- decode(request.body),
         {:ok, texts, format} <- parse(body),
         {:ok, response} <-
           Worker.call(context.worker, "Embed", %EmbedRequest{texts: texts}, @timeout_ms) do
      Json.respond(200, answer(response, format))
    else
      {:invalid, message, param} -> Json.error(400, message, param: param)
      {:not_found, message} -> Json.error(404, message, param: "model", code: "model_not_found")
      {:error, %Error{} = error} -> worker_error(error)
      {:json_error, message} -> Json.error(400, message, code: "invalid_json")
    end
  end

  @doc """
  Validates a decoded request body: `{:ok, texts, :float | :base64}`, or
  `{:invalid, message, param}`.
  """
  @spec parse(term()) ::
          {:ok, [String.t()], :float | :base64}
          | {:invalid, String.t(), String.t() | nil}
          | {:not_found, String.t()}
  def parse(body) when is_map(body) do
    with :ok <- model(Map.get(body, "model")),
         {:ok, texts} <- input(Map.get(body, "input")),
         {:ok, format} <- encoding_format(Map.get(body, "encoding_format", "float")),
         :ok <- dimensions(Map.get(body, "dimensions")) do
      {:ok, texts, format}
    end
  end

  def parse(_), do: {:invalid, "the request body must be a JSON object", nil}

  defp decode(body) do
    case Json.decode(body) do
      {:ok, decoded} -> {:ok, decoded}
      {:error, message} -> {:json_error, message}
    end
  end

  defp model(nil), do: :ok
  defp model(@model), do: :ok

  defp model(name) when is_binary(name),
    do:
      {:not_found,
       "the model #{inspect(name)} does not exist; the embedding model is #{inspect(@model)}"}

  defp model(_), do: {:invalid, "model must be a string", "model"}

  defp input(nil), do: {:invalid, "input is required: a string or a list of strings", "input"}
  defp input(text) when is_binary(text), do: input([text])

  defp input([]), do: {:invalid, "input must not be an empty list", "input"}

  defp input(texts) when is_list(texts) and length(texts) > @max_inputs,
    do:
      {:invalid, "input has #{length(texts)} items; at most #{@max_inputs} are allowed", "input"}

  defp input(texts) when is_list(texts) do
    texts
    |> Enum.with_index()
    |> Enum.find_value({:ok, texts}, fn
      {text, i} when is_binary(text) ->
        if String.trim(text) == "",
          do: {:invalid, "input[#{i}] must not be empty or only whitespace", "input"}

      {_other, i} ->
        {:invalid, "input[#{i}] must be a string (token arrays are not supported)", "input"}
    end)
  end

  defp input(_), do: {:invalid, "input must be a string or a list of strings", "input"}

  defp encoding_format("float"), do: {:ok, :float}
  defp encoding_format("base64"), do: {:ok, :base64}

  defp encoding_format(other),
    do:
      {:invalid, "encoding_format must be \"float\" or \"base64\", got #{Json.encode(other)}",
       "encoding_format"}

  defp dimensions(nil), do: :ok
  defp dimensions(@dimensions), do: :ok

  defp dimensions(other),
    do:
      {:invalid, "dimensions must be #{@dimensions} for #{@model}, got #{Json.encode(other)}",
       "dimensions"}

  defp answer(%EmbedResponse{} = response, format) do
    data =
      response.embeddings
      |> Enum.with_index()
      |> Enum.map(fn {embedding, index} ->
        %{
          "object" => "embedding",
          "index" => index,
          "embedding" => encode(embedding.values, format)
        }
      end)

    %{
      "object" => "list",
      "data" => data,
      "model" => @model,
      "usage" => %{
        "prompt_tokens" => response.prompt_tokens,
        "total_tokens" => response.prompt_tokens
      }
    }
  end

  defp encode(values, :float), do: values

  defp encode(values, :base64),
    do: Base.encode64(for(value <- values, into: <<>>, do: <<value::float-32-little>>))

  defp worker_error(%Error{status: :invalid_argument, message: message}),
    do: Json.error(400, message, code: "invalid_request")

  defp worker_error(%Error{status: :unavailable, message: message}),
    do: Json.error(503, message, code: "worker_unavailable")

  defp worker_error(%Error{status: status, message: message}),
    do: Json.error(500, message, code: Atom.to_string(status))
end
