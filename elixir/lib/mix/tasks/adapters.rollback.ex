defmodule Mix.Tasks.Adapters.Rollback do
  @shortdoc "Makes the previous adapter the one the running host serves"

  @moduledoc """
  Rolls the running host back to the previously active adapter, which is
  still loaded, so the switch is instant (`POST /api/adapters/rollback`).

      mix adapters.rollback

  Needs a running host and its admin token (`ADMIN_TOKEN`, else
  `DATA_DIR/admin_token`).
  """

  use Mix.Task

  alias DevstralElixir.Jobs.CLI
  alias Mix.Tasks.Adapters

  @impl true
  def run(argv) do
    task = "adapters.rollback"
    CLI.parse_flags!(task, argv, [])
    answer = Adapters.request!(task, :post, "/api/adapters/rollback", %{})

    Mix.shell().info(
      "active: #{Adapters.name_or_base(answer["active"])}; previous: #{Adapters.name_or_base(answer["previous"])}"
    )
  end
end
