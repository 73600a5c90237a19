defmodule DevstralElixir.Web.Request do
  @moduledoc """
  A parsed HTTP request, independent of yaws, as handed to the route handlers.

  Handlers return `{status, headers, body}` where `headers` is a list of
  `{name, value}` string pairs and `body` is iodata; see `DevstralElixir.Web.Json`
  for the JSON helpers.
  """

  defstruct method: "GET", path: [], query: %{}, headers: %{}, body: "", peer: nil

  @type t :: %__MODULE__{
          method: String.t(),
          path: [String.t()],
          query: %{optional(String.t()) => String.t()},
          headers: %{optional(String.t()) => String.t()},
          body: binary(),
          peer: :inet.ip_address() | nil
        }

  @type response :: {pos_integer(), [{String.t(), String.t()}], iodata()}

  @doc "A header value by lower-case name, or nil."
  @spec header(t(), String.t()) :: String.t() | nil
  def header(%__MODULE__{headers: headers}, name), do: Map.get(headers, String.downcase(name))
end
