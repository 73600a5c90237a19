defmodule DevstralElixir.Curriculum.WorkerClientTest do
  # Points the :curriculum_worker application setting at a fake: not async.
  use ExUnit.Case, async: false

  alias DevstralElixir.Curriculum.WorkerClient
  alias DevstralElixir.Proto.{CancelJobRequest, EvaluateRequest, JobEvent, TrainRequest}
  alias DevstralElixir.Worker.Error

  defmodule FakeWorker do
    @moduledoc false
    def stream(server, method, request) do
      send(self(), {:stream, server, method, request})
      Process.get(:items)
    end

    def call(server, method, request) do
      send(self(), {:call, server, method, request})
      {:ok, :whatever}
    end
  end

  setup do
    previous = Application.fetch_env(:devstral_elixir, :curriculum_worker)
    Application.put_env(:devstral_elixir, :curriculum_worker, {FakeWorker, :fake_server})

    on_exit(fn ->
      case previous do
        {:ok, value} -> Application.put_env(:devstral_elixir, :curriculum_worker, value)
        :error -> Application.delete_env(:devstral_elixir, :curriculum_worker)
      end
    end)
  end

  defp report do
    test = self()
    fn event -> send(test, {:report, event}) && :ok end
  end

  defp event(kind, extra \\ []), do: struct(JobEvent, [kind: kind, job_id: "job-1"] ++ extra)

  test "train streams every event to report and returns the COMPLETED one" do
    Process.put(:items, [
      event(:PROGRESS, step: 1, total_steps: 2, metrics: %{"loss" => 2.0}),
      event(:CHECKPOINT, artifact_path: "/o/checkpoints/1"),
      event(:COMPLETED, step: 2, total_steps: 2, metrics: %{"loss" => 1.5}, artifact_path: "/o")
    ])

    request = %TrainRequest{job_id: "job-1", stage: 1}
    assert {:ok, done} = WorkerClient.train(request, report())
    assert done.kind == "COMPLETED"
    assert done.artifact_path == "/o"
    assert done.metrics == %{"loss" => 1.5}
    assert_received {:stream, :fake_server, "Train", ^request}
    assert_received {:report, %{kind: "PROGRESS", step: 1, metrics: %{"loss" => 2.0}}}
    assert_received {:report, %{kind: "CHECKPOINT"}}
  end

  test "FAILED, CANCELLED, {:error, _} items, raises and exits are errors" do
    cases = [
      {[event(:PROGRESS), event(:FAILED, message: "out of memory")],
       {:error, "Train failed: out of memory"}},
      {[event(:CANCELLED, message: "by request")], {:error, "Train was cancelled: by request"}},
      {[event(:PROGRESS), {:error, :worker_down}], {:error, "Train failed: :worker_down"}},
      {[event(:PROGRESS)], {:error, "the worker's Train stream ended without a COMPLETED event"}},
      {Stream.map([1], fn _ -> raise Error, status: :unavailable, message: "worker restarting" end),
       {:error, "Train failed: unavailable: worker restarting"}},
      {Stream.map([1], fn _ -> exit(:boom) end), {:error, "Train failed: :boom"}}
    ]

    for {items, expected} <- cases do
      Process.put(:items, items)
      assert WorkerClient.train(%TrainRequest{}, report()) == expected
    end
  end

  test "INVALID_ARGUMENT is {:invalid, _}: no retry can fix it" do
    Process.put(
      :items,
      Stream.map([1], fn _ ->
        raise Error, status: :invalid_argument, message: "dataset_dir: /x is not a directory"
      end)
    )

    assert {:invalid,
            "Train rejected the request: invalid_argument: dataset_dir: /x is not a directory"} =
             WorkerClient.train(%TrainRequest{}, report())

    Process.put(:items, [{:error, %Error{status: :invalid_argument, message: "no model"}}])

    assert {:invalid, "Evaluate rejected the request: " <> _} =
             WorkerClient.evaluate(%EvaluateRequest{}, report())
  end

  test "evaluate, and reading its loss" do
    Process.put(:items, [event(:COMPLETED, metrics: %{"eval_loss" => 1.25, "tokens" => 100.0})])
    assert {:ok, done} = WorkerClient.evaluate(%EvaluateRequest{loss_datasets: ["/e"]}, report())
    assert WorkerClient.loss(done) == 1.25
    assert WorkerClient.loss(%{"loss" => 2.0}) == 2.0
    assert WorkerClient.loss(%{"loss/e.jsonl" => 3.0, "n" => 1.0}) == 3.0
    assert WorkerClient.loss(%{"a_loss" => 1.0, "b_loss" => 2.0}) == nil
    assert WorkerClient.loss(%{}) == nil
  end

  test "cancel asks the worker to cancel the job's call" do
    assert :ok = WorkerClient.cancel("job-9")
    assert_received {:call, :fake_server, "CancelJob", %CancelJobRequest{job_id: "job-9"}}
    assert WorkerClient.job_id(%{id: 9}) == "job-9"
  end
end
