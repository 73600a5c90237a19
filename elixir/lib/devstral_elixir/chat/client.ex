defmodule DevstralElixir.Chat.Client do
  @moduledoc """
  `mix chat`'s client of the host's OpenAI-compatible API: the model list,
  and a streamed chat completion whose text is handed over delta by delta
  and which the caller can stop at any moment.

  Stopping cancels the HTTP request, which closes its connection; the host
  sees the client go and cancels the generation on the worker, so a stopped
  answer frees its batch slot at once.
  """

  alias DevstralElixir.Chat.SSE
  alias DevstralElixir.Web.Json

  @enforce_keys [:base]
  defstruct [:base, :token]

  @type t :: %__MODULE__{base: String.t(), token: String.t() | nil}

  @typedoc "How a streamed answer ended."
  @type outcome ::
          {:done, finish_reason :: String.t() | nil, text :: String.t()}
          | {:stopped, text :: String.t()}
          | {:error, String.t()}

  @doc "A client of the host at `base` (e.g. `http://127.0.0.1:4000`), sending `token` when set."
  @spec new(String.t(), String.t() | nil) :: t()
  def new(base, token), do: %__MODULE__{base: base, token: token}

  @doc "Whether a host of this project answers at the client's address."
  @spec up?(t()) :: boolean()
  def up?(client), do: match?({:ok, 200, %{"status" => _}}, get(client, "/health"))

  @doc "The worker's state as `/health` reports it (`\"ready\"`, `\"starting\"`, ...)."
  @spec worker_status(t()) :: String.t() | nil
  def worker_status(client) do
    case get(client, "/health") do
      {:ok, 200, %{"worker" => %{"status" => status}}} -> status
      _ -> nil
    end
  end

  @doc "The model ids the host serves (`GET /v1/models`)."
  @spec models(t()) :: {:ok, [String.t()]} | {:error, String.t()}
  def models(client) do
    case get(client, "/v1/models") do
      {:ok, 200, %{"data" => models}} -> {:ok, Enum.map(models, & &1["id"])}
      {:ok, status, body} -> {:error, "GET /v1/models answered HTTP #{status}: #{message(body)}"}
      {:error, reason} -> {:error, "GET /v1/models failed: #{inspect(reason)}"}
    end
  end

  @doc """
  Streams a chat completion for `request` (the OpenAI body; `"stream"` is
  set here). Calls `on_text` with each piece of text as it arrives. Any
  other message this process receives meanwhile is given to `stop?`; when
  it answers true, the request is cancelled and `{:stopped, text_so_far}`
  returned. Otherwise returns `{:done, finish_reason, text}` or
  `{:error, message}`.
  """
  @spec stream_chat(t(), map(), (String.t() -> any()), (term() -> boolean())) :: outcome()
  def stream_chat(client, request, on_text, stop?) do
    {:ok, _} = Application.ensure_all_started(:inets)
    body = Json.encode(Map.put(request, "stream", true))

    http_request =
      {String.to_charlist(client.base <> "/v1/chat/completions"), headers(client),
       ~c"application/json", body}

    case :httpc.request(:post, http_request, [connect_timeout: 5_000],
           sync: false,
           stream: :self,
           body_format: :binary
         ) do
      {:ok, ref} -> receive_stream(ref, "", {nil, []}, on_text, stop?)
      {:error, reason} -> {:error, "the request failed: #{inspect(reason)}"}
    end
  end

  # `answer` is {finish_reason, text pieces so far (reversed)}.
  defp receive_stream(ref, buffer, answer, on_text, stop?) do
    receive do
      {:http, {^ref, :stream_start, _headers}} ->
        receive_stream(ref, buffer, answer, on_text, stop?)

      {:http, {^ref, :stream, bytes}} ->
        {events, rest} = SSE.feed(buffer, bytes)
        answer = Enum.reduce(events, answer, &handle_event(&1, &2, on_text))
        receive_stream(ref, rest, answer, on_text, stop?)

      {:http, {^ref, :stream_end, _headers}} ->
        {finish, pieces} = answer
        {:done, finish, text(pieces)}

      {:http, {^ref, {{_version, status, _reason}, _headers, body}}} ->
        {:error, "HTTP #{status}: #{message(decode(body))}"}

      {:http, {^ref, {:error, reason}}} ->
        {:error, "the stream broke: #{inspect(reason)}"}

      other ->
        if stop?.(other) do
          :ok = :httpc.cancel_request(ref)
          {:stopped, text(elem(answer, 1))}
        else
          receive_stream(ref, buffer, answer, on_text, stop?)
        end
    end
  end

  defp text(pieces), do: pieces |> Enum.reverse() |> IO.iodata_to_binary()

  defp handle_event("[DONE]", answer, _on_text), do: answer

  defp handle_event(data, {finish, pieces}, on_text) do
    case decode(data) do
      %{"choices" => [choice | _]} ->
        text = get_in(choice, ["delta", "content"])
        if text, do: on_text.(text)
        {choice["finish_reason"] || finish, if(text, do: [text | pieces], else: pieces)}

      %{"error" => %{"message" => message}} ->
        on_text.("\n[error: #{message}]")
        {finish, pieces}

      _ ->
        {finish, pieces}
    end
  end

  defp get(client, path) do
    {:ok, _} = Application.ensure_all_started(:inets)
    url = String.to_charlist(client.base <> path)

    case :httpc.request(:get, {url, headers(client)}, [timeout: 10_000, connect_timeout: 1_000],
           body_format: :binary
         ) do
      {:ok, {{_, status, _}, _headers, body}} -> {:ok, status, decode(body)}
      {:error, reason} -> {:error, reason}
    end
  end

  # The decoded JSON, or the raw text when it is not JSON (for messages).
  defp decode(body) do
    case Json.decode(body) do
      {:ok, term} -> term
      {:error, _} -> body
    end
  end

  defp headers(%{token: nil}), do: []
  defp headers(%{token: token}), do: [{~c"authorization", String.to_charlist("Bearer " <> token)}]

  defp message(%{"error" => %{"message" => message}}), do: message
  defp message(other), do: inspect(other)
end
