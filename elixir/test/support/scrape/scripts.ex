defmodule DevstralElixir.Test.Scrape.Scripts do
  @moduledoc """
  Scripted misbehaviour for the fake servers. A script is a list of
  responses used one per request (then the normal answer), or
  `{:always, response}`. Responses: `:ok` (the normal answer), a status
  code, `:html`, `:drop` (half the normal body, then the connection
  closes), `:hang`, `{:rate_limited, seconds}` (429 with
  `x-ratelimit-remaining: 0` and a reset that many seconds ahead) and
  `{:forbidden_rate_limited, seconds}` (the same as GitHub's 403).
  """

  @doc "Pops the next scripted response for `key` from the agent's `scripts` map."
  @spec next(Agent.agent(), term()) :: term()
  def next(agent, key) do
    Agent.get_and_update(agent, fn state ->
      case state.scripts[key] do
        {:always, response} -> {response, state}
        [response | rest] -> {response, put_in(state, [:scripts, key], rest)}
        _ -> {:ok, state}
      end
    end)
  end

  @doc "Answers a request with the scripted response for `key`, calling `normal` for `:ok` and `:drop`."
  @spec respond(Agent.agent(), term(), (() -> tuple())) :: term()
  def respond(agent, key, normal) do
    case next(agent, key) do
      :ok ->
        normal.()

      :html ->
        {200, [{"content-type", "text/html"}], "<html><body>Maintenance</body></html>"}

      :hang ->
        :hang

      :drop ->
        drop(normal.())

      {:rate_limited, seconds} ->
        {429, rate_headers(0, seconds), ~s({"message":"API rate limit exceeded"})}

      {:forbidden_rate_limited, seconds} ->
        {403, rate_headers(0, seconds), ~s({"message":"API rate limit exceeded"})}

      status when is_integer(status) ->
        {status, [{"content-type", "text/plain"}], "error #{status}"}
    end
  end

  @doc "Rate-limit headers: `x-ratelimit-limit`, `-remaining`, `-reset` (epoch seconds)."
  @spec rate_headers(non_neg_integer(), integer()) :: [{String.t(), String.t()}]
  def rate_headers(remaining \\ 99, reset_in \\ 60) do
    [
      {"x-ratelimit-limit", "100"},
      {"x-ratelimit-remaining", Integer.to_string(remaining)},
      {"x-ratelimit-reset", Integer.to_string(System.os_time(:second) + reset_in)}
    ]
  end

  @doc "A JSON response with rate-limit headers."
  @spec json(pos_integer(), term()) :: tuple()
  def json(status, term) do
    {status, [{"content-type", "application/json; charset=utf-8"} | rate_headers()],
     IO.iodata_to_binary(:jiffy.encode(term, [:use_nil]))}
  end

  @doc "A JSON 404."
  @spec not_found() :: tuple()
  def not_found, do: {404, [{"content-type", "application/json"}], ~s({"message":"Not Found"})}

  defp drop({status, headers, body}), do: {:drop, status, headers, body, div(byte_size(body), 2)}
end
