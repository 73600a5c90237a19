defmodule DevstralElixir.Test.Jobs.FakeWorkerClient do
  @moduledoc """
  A `DevstralElixir.Curriculum.WorkerClient` that stands in for the Python
  worker: `train/2` writes an adapter directory and its `metrics.json` as the
  trainer would, and reports the eval losses before and after (from a table)
  in its COMPLETED metrics, as the worker does.

  Every call is sent to the calling process as `{:fake_worker, call, request}`
  (the test process when a test calls the runner directly). The calling
  process may put a script in its dictionary under `:fake_worker`:

    * `:losses` - `fn adapter_label, :elixir | :general -> loss end`, where
      the label is `"base"` or the adapter directory's name (`"stage2"`):
      "before" is the init adapter's, "after" the output directory's;
    * `:train` - `fn request -> nil | reply end`; a non-nil reply is returned
      instead of training.

    * `:pass_at_1` - `fn label -> rate end` for `evaluate/2`.

  Without a script, every stage improves Elixir loss by 10% and worsens
  general-code loss by 1%, and pass@1 by 0.05 over the base model's 0.1, so
  every gate passes.
  """

  @behaviour DevstralElixir.Curriculum.WorkerClient

  alias DevstralElixir.Proto.TrainRequest

  @elixir %{"base" => 3.0, "stage1" => 2.7, "stage2" => 2.43, "stage3" => 2.187}
  @general %{"base" => 2.0, "stage1" => 2.02, "stage2" => 2.0402, "stage3" => 2.0606}

  @doc "The default losses."
  @spec default_loss(String.t(), :elixir | :general) :: float()
  def default_loss(label, :elixir), do: Map.fetch!(@elixir, label)
  def default_loss(label, :general), do: Map.fetch!(@general, label)

  @impl true
  def train(%TrainRequest{} = request, report) do
    send(self(), {:fake_worker, :train, request})
    script = Process.get(:fake_worker, %{})

    case script[:train] && script[:train].(request) do
      nil ->
        report.(event("PROGRESS", 1, %{"loss" => 2.5}))
        File.mkdir_p!(request.output_dir)
        File.write!(Path.join(request.output_dir, "adapter_config.json"), ~s({"r": 32}))
        File.write!(Path.join(request.output_dir, "adapter_model.safetensors"), "weights")
        metrics = Map.merge(%{"loss" => 2.0}, measured(request))
        File.write!(Path.join(request.output_dir, "metrics.json"), :jiffy.encode(metrics))
        completed = event("COMPLETED", 2, metrics)
        report.(completed)
        {:ok, %{completed | artifact_path: request.output_dir}}

      reply ->
        reply
    end
  end

  # What the worker measures: eval losses before (the starting adapter) and
  # after (the stage's), and their changes in percent.
  defp measured(request) do
    losses = Process.get(:fake_worker, %{})[:losses] || (&default_loss/2)
    before = if request.init_adapter == "", do: "base", else: Path.basename(request.init_adapter)
    after_ = Path.basename(request.output_dir)

    for {prefix, kind} <- [{"eval_loss", :elixir}, {"general_eval_loss", :general}],
        reduce: %{} do
      acc ->
        b = losses.(before, kind)
        a = losses.(after_, kind)

        Map.merge(acc, %{
          "#{prefix}_before" => b,
          prefix => a,
          "#{prefix}_change_pct" => (a - b) / b * 100
        })
    end
  end

  @pass_at_1 %{"base" => 0.1, "stage1" => 0.15, "stage2" => 0.2, "stage3" => 0.25}

  @doc "The default pass@1 of the base model (`\"base\"`) and of each stage's adapter."
  @spec default_pass_at_1(String.t()) :: float()
  def default_pass_at_1(label), do: Map.fetch!(@pass_at_1, label)

  # Execution-based evaluation, as the worker does it: pass@1 (from the
  # script's `:pass_at_1`, `fn label -> rate end`) and a 0.95 compile rate,
  # added under "evaluation" to the stage's metrics.json when one is named.
  @impl true
  def evaluate(request, report) do
    send(self(), {:fake_worker, :evaluate, request})
    pass_at_1 = Process.get(:fake_worker, %{})[:pass_at_1] || (&default_pass_at_1/1)
    label = if request.adapter == "", do: "base", else: Path.basename(request.adapter)

    metrics = %{
      "pass_at_1" => pass_at_1.(label),
      "compile_rate" => 0.95,
      "problems" => 5.0,
      "samples" => 5.0
    }

    if request.metrics_path != "" do
      current = request.metrics_path |> File.read!() |> :jiffy.decode([:return_maps])
      File.write!(request.metrics_path, :jiffy.encode(Map.put(current, "evaluation", metrics)))
    end

    completed = %{event("COMPLETED", 1, metrics) | phase: "eval"}
    report.(completed)
    {:ok, %{completed | artifact_path: Path.join(request.output_dir, "summary.json")}}
  end

  @impl true
  def cancel(job_id) do
    send(self(), {:fake_worker, :cancel, job_id})
    :ok
  end

  defp event(kind, step, metrics) do
    %{
      kind: kind,
      phase: "train",
      message: "",
      step: step,
      total_steps: 2,
      elapsed_ms: 10,
      eta_ms: 10,
      metrics: metrics,
      artifact_path: ""
    }
  end
end
