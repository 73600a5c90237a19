defmodule DevstralElixir.Worker.Rpc do
  @moduledoc """
  The methods of the `Worker` service in `proto/worker.proto`: for each, its
  request and response message modules and whether the response is a stream.
  """

  alias DevstralElixir.Proto

  @methods %{
    "Health" => {Proto.HealthRequest, Proto.HealthResponse, :unary},
    "LoadModel" => {Proto.LoadModelRequest, Proto.LoadModelResponse, :unary},
    "ListModels" => {Proto.ListModelsRequest, Proto.ListModelsResponse, :unary},
    "Generate" => {Proto.GenerateRequest, Proto.GenerateResponse, :stream},
    "Embed" => {Proto.EmbedRequest, Proto.EmbedResponse, :unary},
    "BuildDataset" => {Proto.BuildDatasetRequest, Proto.JobEvent, :stream},
    "Train" => {Proto.TrainRequest, Proto.JobEvent, :stream},
    "Evaluate" => {Proto.EvaluateRequest, Proto.JobEvent, :stream},
    "CancelJob" => {Proto.CancelJobRequest, Proto.CancelJobResponse, :unary},
    "ListAdapters" => {Proto.ListAdaptersRequest, Proto.ListAdaptersResponse, :unary},
    "ActivateAdapter" => {Proto.ActivateAdapterRequest, Proto.ActivateAdapterResponse, :unary}
  }

  @type method :: String.t()

  @doc "The `{request_module, response_module, :unary | :stream}` of a method."
  @spec fetch(method()) :: {:ok, {module(), module(), :unary | :stream}} | :error
  def fetch(method), do: Map.fetch(@methods, method)

  @doc "All method names."
  @spec methods() :: [method()]
  def methods, do: Map.keys(@methods)

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
  @spec status(integer()) :: atom()
  def status(code), do: Map.get(@codes, code, :unknown)
end
