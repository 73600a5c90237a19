defmodule Mix.Tasks.Adapters.Activate do
  @shortdoc "Makes an adapter the one the running host serves (blue-green)"

  @moduledoc """
  Activates an adapter on the running host (`POST /api/adapters/activate`):
  it is loaded beside the live one, smoke-tested, then swapped in; requests in
  flight finish on the adapter they started with, and the previous adapter
  stays loaded for `mix adapters.rollback`. A refused adapter (wrong base
  model, unreadable weights, failed smoke test) changes nothing.

      mix adapters.activate RUN/stageN     # or its model id, tiny-elixir:RUN/stageN
      mix adapters.activate ""             # serve the plain base model

  Needs a running host and its admin token (`ADMIN_TOKEN`, else
  `DATA_DIR/admin_token`).
  """

  use Mix.Task

  alias DevstralElixir.Jobs.CLI
  alias Mix.Tasks.Adapters

  @impl true
  def run(argv) do
    task = "adapters.activate"

    id =
      case CLI.parse!(task, argv, []) do
        {_, [id]} -> id
        _ -> Mix.raise("mix #{task}: give exactly one adapter, e.g. mix #{task} RUN/stage3")
      end

    case Adapters.activate(id) do
      {:ok, answer} -> Adapters.print_activation(answer)
      {:error, message} -> Mix.raise("mix #{task}: #{message}")
    end
  end
end
