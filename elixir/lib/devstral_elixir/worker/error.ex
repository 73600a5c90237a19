defmodule DevstralElixir.Worker.Error do
  @moduledoc """
  A failed worker call: a gRPC status (as an atom, e.g. `:invalid_argument`,
  `:out_of_range`, `:unavailable`) and the worker's message.
  """
  defexception [:status, :message]

  @type t :: %__MODULE__{status: atom(), message: String.t()}

  @impl true
  def message(%__MODULE__{status: status, message: message}), do: "#{status}: #{message}"
end
