defmodule DevstralElixir.Web.Health do
  @moduledoc """
  `GET /health`: the host status, the worker status (`starting`, `ready`,
  `failed` with the reason in `error`, or `down`, and
  `generations_in_flight`: the Generate calls open on it) and the loaded model. Answers 200 while the host runs, whatever the
  worker's state, so probes can tell the two apart.
  """

  alias DevstralElixir.Web.{Json, Request}
  alias DevstralElixir.Worker

  @doc "The health document."
  @spec show(map()) :: Request.response()
  def show(context) do
    worker = Worker.info_or_down(context.worker)

    Json.respond(200, %{
      "status" => "ok",
      "host" => %{
        "node" => Atom.to_string(node()),
        "otp_release" => to_string(:erlang.system_info(:otp_release)),
        "elixir" => System.version(),
        "uptime_ms" => :erlang.statistics(:wall_clock) |> elem(0)
      },
      "worker" => %{
        "status" => Atom.to_string(worker.status),
        "os_pid" => worker.os_pid,
        "error" => worker.failure,
        "generations_in_flight" => worker.generations_in_flight
      },
      "model" => model(worker.model)
    })
  end

  defp model(nil), do: nil

  defp model(info) do
    %{
      "id" => info.id,
      "path" => info.path,
      "backend" => info.backend,
      "device" => info.device,
      "dtype" => info.dtype,
      "context_length" => info.context_length,
      "parameters" => info.parameters,
      "active_adapter" => empty_to_nil(info.active_adapter)
    }
  end

  defp empty_to_nil(""), do: nil
  defp empty_to_nil(value), do: value
end
