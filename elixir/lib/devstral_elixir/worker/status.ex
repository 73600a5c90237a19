defmodule DevstralElixir.Worker.Status do
  @moduledoc """
  gRPC status codes, which the worker sends in ERROR frames, as atoms. The
  methods themselves come from the generated `DevstralElixir.Proto.Worker.Service`.
  """

  # gRPC status codes (grpc/doc/statuscodes.md) by number, for readable errors.
  @codes %{
    0 => :ok,
    1 => :cancelled,
    2 => :unknown,
    3 => :invalid_argument,
    4 => :deadline_exceeded,
    5 => :not_found,
    6 => :already_exists,
    7 => :permission_denied,
    8 => :resource_exhausted,
    9 => :failed_precondition,
    10 => :aborted,
    11 => :out_of_range,
    12 => :unimplemented,
    13 => :internal,
    14 => :unavailable,
    15 => :data_loss,
    16 => :unauthenticated
  }

  @doc "The atom for a gRPC status code number (`:unknown` for unexpected ones)."
  @spec from_code(integer()) :: atom()
  def from_code(code), do: Map.get(@codes, code, :unknown)
end
