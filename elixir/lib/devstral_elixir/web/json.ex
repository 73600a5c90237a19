defmodule DevstralElixir.Web.Json do
  @moduledoc """
  JSON responses and OpenAI-style errors, built on Debian's `:jiffy`.
  """

  alias DevstralElixir.Web.Request

  @doc "Encodes a term (maps with string or atom keys, lists, numbers, binaries, nil) as JSON."
  @spec encode(term()) :: binary()
  def encode(term), do: :jiffy.encode(term, [:use_nil])

  @doc "Decodes JSON into maps with string keys; `{:error, reason}` on malformed input."
  @spec decode(binary()) :: {:ok, term()} | {:error, String.t()}
  def decode(body) do
    {:ok, :jiffy.decode(body, [:return_maps, :use_nil])}
  catch
    _kind, {:error, {pos, reason}} -> {:error, "invalid JSON at byte #{pos}: #{reason}"}
    _kind, reason -> {:error, "invalid JSON: #{inspect(reason)}"}
  end

  @doc "A JSON response."
  @spec respond(pos_integer(), term()) :: Request.response()
  def respond(status, term),
    do: {status, [{"content-type", "application/json"}], encode(term)}

  @doc """
  An OpenAI-style error response:
  `{"error": {"message": ..., "type": ..., "param": ..., "code": ...}}`.
  """
  @spec error(pos_integer(), String.t(), keyword()) :: Request.response()
  def error(status, message, opts \\ []) do
    respond(status, %{
      "error" => %{
        "message" => message,
        "type" => Keyword.get(opts, :type, default_type(status)),
        "param" => Keyword.get(opts, :param),
        "code" => Keyword.get(opts, :code)
      }
    })
  end

  defp default_type(400), do: "invalid_request_error"
  defp default_type(401), do: "authentication_error"
  defp default_type(403), do: "permission_error"
  defp default_type(404), do: "not_found_error"
  defp default_type(503), do: "service_unavailable"
  defp default_type(_), do: "server_error"

  @doc """
  The error response for a failed worker call: its gRPC status as an HTTP
  status and an error code. `overrides` maps a status to the `{http, code}`
  a route gives it where it means something more specific (an adapter that
  is not found, say).
  """
  @spec worker_error(DevstralElixir.Worker.Error.t(), %{atom() => {pos_integer(), String.t()}}) ::
          Request.response()
  def worker_error(
        %DevstralElixir.Worker.Error{status: status, message: message},
        overrides \\ %{}
      ) do
    {code, name} = Map.get(overrides, status) || worker_status(status)
    error(code, message, code: name)
  end

  defp worker_status(:invalid_argument), do: {400, "invalid_request"}
  defp worker_status(:not_found), do: {404, "not_found"}
  defp worker_status(:unimplemented), do: {501, "not_implemented"}
  defp worker_status(:unavailable), do: {503, "worker_unavailable"}
  defp worker_status(:deadline_exceeded), do: {504, "worker_timeout"}
  defp worker_status(other), do: {500, Atom.to_string(other)}

  @doc "405 with an `allow` header naming the methods the route takes."
  @spec method_not_allowed(String.t(), String.t()) :: Request.response()
  def method_not_allowed(method, allowed) do
    {status, headers, body} =
      error(405, "#{method} is not allowed here; use #{allowed}", code: "method_not_allowed")

    {status, [{"allow", allowed} | headers], body}
  end
end
