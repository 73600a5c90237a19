defmodule DevstralElixir.Web.OpenAIParams do
  @moduledoc """
  Validates OpenAI request bodies and turns them into `GenerateRequest`s.

  Supported: `model`, `prompt` (a string or a one-element list) with optional
  `suffix` for fill-in-the-middle, `messages` (string content or text parts),
  `max_tokens`/`max_completion_tokens`, `temperature`, `top_p`, `stop` (a string
  or up to 4 strings), `seed`, `stream`, `stream_options.include_usage` and
  `n` (1 only). Unknown fields are ignored, as OpenAI clients send many.

  Defaults follow OpenAI's: `temperature` 1, `top_p` 1, and `max_tokens` 16 for
  completions; chat uses the worker's default (256).

  `top_p` is sent only when the client gives one (absent means 1.0 on the
  worker). OpenAI accepts `top_p: 0`, but the worker's nucleus must be in
  (0, 1]: a nucleus of zero mass keeps only the most likely token, which is
  greedy decoding, so `top_p: 0` is sent as `temperature: 0` with no `top_p`.
  """

  alias DevstralElixir.Proto.{ChatMessage, ChatPrompt, FimPrompt, GenerateRequest, SamplingParams}

  @type invalid :: {:invalid, String.t(), String.t() | nil}
  @type parsed :: %{
          request: GenerateRequest.t(),
          model: String.t() | nil,
          stream: boolean(),
          include_usage: boolean()
        }

  @doc "Parses a `/v1/completions` body."
  @spec completion(map()) :: {:ok, parsed()} | invalid()
  def completion(body) when is_map(body) do
    with {:ok, prompt} <- prompt(body),
         {:ok, suffix} <- optional_string(body, "suffix"),
         {:ok, common} <- common(body, 16) do
      input =
        if suffix, do: {:fim, %FimPrompt{prefix: prompt, suffix: suffix}}, else: {:prompt, prompt}

      {:ok, finish(common, input)}
    end
  end

  def completion(_), do: {:invalid, "the request body must be a JSON object", nil}

  @doc "Parses a `/v1/chat/completions` body."
  @spec chat(map()) :: {:ok, parsed()} | invalid()
  def chat(body) when is_map(body) do
    with {:ok, messages} <- messages(body),
         {:ok, common} <- common(body, 0) do
      {:ok, finish(common, {:chat, %ChatPrompt{messages: messages}})}
    end
  end

  def chat(_), do: {:invalid, "the request body must be a JSON object", nil}

  defp finish(common, input) do
    %{common | request: %GenerateRequest{common.request | input: input}}
  end

  defp common(body, default_max_tokens) do
    with {:ok, model} <- optional_string(body, "model"),
         {:ok, max_tokens} <- max_tokens(body, default_max_tokens),
         {:ok, temperature} <- number(body, "temperature", 1.0, 0.0, 2.0),
         {:ok, top_p} <- number(body, "top_p", nil, 0.0, 1.0),
         {:ok, stop} <- stop(body),
         {:ok, seed} <- seed(body),
         {:ok, stream} <- boolean(body, "stream"),
         :ok <- only_one(body) do
      {temperature, top_p} = nucleus(temperature, top_p)

      params = %SamplingParams{
        max_tokens: max_tokens,
        temperature: temperature,
        top_p: top_p,
        seed: seed,
        stop: stop
      }

      {:ok,
       %{
         request: %GenerateRequest{model: model || "", params: params},
         model: model,
         stream: stream,
         include_usage: get_in(body, ["stream_options", "include_usage"]) == true
       }}
    end
  end

  # OpenAI's top_p 0 keeps only the top token: that is greedy decoding, which
  # the worker spells temperature 0 (it refuses a nucleus of 0).
  defp nucleus(_temperature, top_p) when top_p == 0, do: {0.0, nil}
  defp nucleus(temperature, top_p), do: {temperature, top_p}

  defp prompt(body) do
    case Map.get(body, "prompt") do
      prompt when is_binary(prompt) -> {:ok, prompt}
      [prompt] when is_binary(prompt) -> {:ok, prompt}
      nil -> {:invalid, "missing required field: prompt", "prompt"}
      _ -> {:invalid, "prompt must be a string (batched prompts are not supported)", "prompt"}
    end
  end

  @doc """
  Checks each item of a request's list with `check.(item, index)`, which
  answers `{:ok, parsed}` or an `{:invalid, message, param}`: all the parsed
  items in order, or the first item's error.
  """
  @spec each_valid(list(), (term(), non_neg_integer() -> {:ok, term()} | tuple())) ::
          {:ok, list()} | tuple()
  def each_valid(items, check) do
    items
    |> Enum.with_index()
    |> Enum.reduce_while({:ok, []}, fn {item, index}, {:ok, acc} ->
      case check.(item, index) do
        {:ok, parsed} -> {:cont, {:ok, [parsed | acc]}}
        invalid -> {:halt, invalid}
      end
    end)
    |> case do
      {:ok, parsed} -> {:ok, Enum.reverse(parsed)}
      invalid -> invalid
    end
  end

  defp messages(body) do
    case Map.get(body, "messages") do
      nil ->
        {:invalid, "missing required field: messages", "messages"}

      [_ | _] = messages ->
        each_valid(messages, &chat_message/2)

      _ ->
        {:invalid, "messages must be a non-empty array", "messages"}
    end
  end

  defp chat_message(%{"role" => role} = message, index)
       when role in ["system", "developer", "user", "assistant", "tool"] do
    case content(Map.get(message, "content")) do
      {:ok, text} ->
        {:ok, %ChatMessage{role: role, content: text}}

      :error ->
        {:invalid, "messages[#{index}].content must be a string or text parts", "messages"}
    end
  end

  defp chat_message(_message, index) do
    {:invalid, "messages[#{index}].role must be one of system, developer, user, assistant, tool",
     "messages"}
  end

  defp content(text) when is_binary(text), do: {:ok, text}
  defp content(nil), do: {:ok, ""}

  defp content(parts) when is_list(parts) do
    if Enum.all?(parts, &match?(%{"type" => "text", "text" => text} when is_binary(text), &1)) do
      {:ok, Enum.map_join(parts, "", & &1["text"])}
    else
      :error
    end
  end

  defp content(_), do: :error

  defp max_tokens(body, default) do
    value = Map.get(body, "max_completion_tokens", Map.get(body, "max_tokens"))

    case value do
      nil ->
        {:ok, default}

      n when is_integer(n) and n > 0 and n <= 1_000_000 ->
        {:ok, n}

      _ ->
        {:invalid, "max_tokens must be a positive integer, got #{inspect(value)}", "max_tokens"}
    end
  end

  defp number(body, field, default, min, max) do
    case Map.get(body, field) do
      nil -> {:ok, default}
      n when is_number(n) and n >= min and n <= max -> {:ok, n * 1.0}
      n -> {:invalid, "#{field} must be a number from #{min} to #{max}, got #{inspect(n)}", field}
    end
  end

  defp stop(body) do
    case Map.get(body, "stop") do
      nil ->
        {:ok, []}

      stop when is_binary(stop) and stop != "" ->
        {:ok, [stop]}

      stops when is_list(stops) and length(stops) <= 4 ->
        if Enum.all?(stops, &(is_binary(&1) and &1 != "")),
          do: {:ok, stops},
          else: {:invalid, "stop must hold non-empty strings", "stop"}

      _ ->
        {:invalid, "stop must be a string or a list of at most 4 strings", "stop"}
    end
  end

  defp seed(body) do
    case Map.get(body, "seed") do
      nil -> {:ok, nil}
      n when is_integer(n) and n >= 0 and n < 18_446_744_073_709_551_616 -> {:ok, n}
      n -> {:invalid, "seed must be a non-negative integer, got #{inspect(n)}", "seed"}
    end
  end

  defp boolean(body, field) do
    case Map.get(body, field) do
      nil -> {:ok, false}
      value when is_boolean(value) -> {:ok, value}
      value -> {:invalid, "#{field} must be true or false, got #{inspect(value)}", field}
    end
  end

  defp optional_string(body, field) do
    case Map.get(body, field) do
      nil -> {:ok, nil}
      value when is_binary(value) -> {:ok, value}
      value -> {:invalid, "#{field} must be a string, got #{inspect(value)}", field}
    end
  end

  defp only_one(body) do
    case Map.get(body, "n", 1) do
      1 -> :ok
      n -> {:invalid, "only n=1 is supported, got #{inspect(n)}", "n"}
    end
  end
end
