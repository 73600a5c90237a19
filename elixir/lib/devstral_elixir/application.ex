defmodule DevstralElixir.Application do
  @moduledoc """
  The OTP application: the always-on infrastructure (task supervisor, event
  registry) and, unless `start_services` is false, the Python worker and the
  HTTP server.
  """
  use Application

  @impl true
  def start(_type, _args) do
    children =
      [
        {Task.Supervisor, name: DevstralElixir.TaskSupervisor}
      ] ++ services()

    Supervisor.start_link(children, strategy: :one_for_one, name: DevstralElixir.Supervisor)
  end

  defp services do
    if Application.get_env(:devstral_elixir, :start_services, true) do
      []
    else
      []
    end
  end
end
