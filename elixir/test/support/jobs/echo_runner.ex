defmodule DevstralElixir.Test.Jobs.EchoRunner do
  @moduledoc "A runner for JSON-only args (the HTTP path): reports one step and returns its args."

  @behaviour DevstralElixir.Jobs.Runner

  @impl true
  def run(job, report) do
    :ok = report.(%{"step" => 1, "total_steps" => 1})
    {:ok, job.args}
  end
end
