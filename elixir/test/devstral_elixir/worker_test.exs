defmodule DevstralElixir.WorkerTest do
  # Each test runs its own real Python worker process; they are independent,
  # but the machine is small, so they run one at a time.
  use ExUnit.Case, async: false

  import DevstralElixir.Test.Eventually

  alias DevstralElixir.{Config, Worker}
  alias DevstralElixir.Proto.{GenerateRequest, GenerateResponse, HealthRequest, LoadModelRequest}
  alias DevstralElixir.Proto.SamplingParams
  alias DevstralElixir.Web.{Health, Json}

  @model Path.join(Config.root(), "data/models/tiny-elixir")
  # Kept long so that a stream is still running when the test interferes with it.
  @long %SamplingParams{max_tokens: 1_500, temperature: 0.0}

  setup do
    unless File.exists?(Path.join(@model, "config.json")),
      do: flunk("the tiny model is missing at #{@model}; run `make model`")

    pid = start_supervised!(worker_spec(grace_ms: 3_000, min_backoff_ms: 50))

    eventually(fn -> Worker.info(pid).status == :ready end, 60_000)
    %{worker: pid}
  end

  test "a unary call and a streamed generation", %{worker: worker} do
    assert {:ok, health} = Worker.call(worker, "Health", %HealthRequest{})
    assert health.state == :READY and health.reason == ""
    assert health.model.id == @model

    request = %GenerateRequest{
      input: {:prompt, "defmodule Greeter do\n  def hello(name) do\n"},
      params: %SamplingParams{max_tokens: 12, temperature: 0.0}
    }

    items = worker |> Worker.stream("Generate", request) |> Enum.to_list()
    last = List.last(items)
    assert last.finish_reason in [:FINISH_REASON_STOP, :FINISH_REASON_LENGTH]
    assert last.usage.completion_tokens in 1..12
    assert Enum.all?(Enum.drop(items, -1), &(&1.finish_reason == :FINISH_REASON_UNSPECIFIED))

    # Greedy decoding is deterministic.
    again = worker |> Worker.stream("Generate", request) |> Enum.map_join(& &1.text)
    assert again == Enum.map_join(items, & &1.text)
  end

  test "worker errors come back as {:error, %Error{}} with the gRPC status", %{worker: worker} do
    bad = %GenerateRequest{input: {:prompt, "x"}, params: %SamplingParams{temperature: -1.0}}

    assert {:error, %Worker.Error{status: :invalid_argument, message: message}} =
             first(worker, bad)

    assert message =~ "temperature"

    wrong_model = %GenerateRequest{model: "no-such-model", input: {:prompt, "x"}}
    assert {:error, %Worker.Error{status: :not_found}} = first(worker, wrong_model)
  end

  test "kill -9 mid-stream: the caller gets an error within 1 s, the worker comes back", %{
    worker: worker
  } do
    {:ok, ref} = Worker.open(worker, "Generate", long_request())

    assert {:item, %GenerateResponse{finish_reason: :FINISH_REASON_UNSPECIFIED}} =
             Worker.await(ref, 30_000)

    os_pid = Worker.info(worker).os_pid
    {_, 0} = System.cmd("kill", ["-9", to_string(os_pid)])
    killed_at = System.monotonic_time(:millisecond)

    assert {:error, %Worker.Error{status: :unavailable}} = drain(ref)
    assert System.monotonic_time(:millisecond) - killed_at < 1_000

    eventually(fn -> Worker.info(worker).status == :ready end, 60_000)
    assert Worker.info(worker).os_pid != os_pid

    request = %GenerateRequest{input: {:prompt, "def"}, params: %SamplingParams{max_tokens: 3}}
    assert [_ | _] = worker |> Worker.stream("Generate", request) |> Enum.to_list()
  end

  test "a caller that dies has its call cancelled", %{worker: worker} do
    test = self()

    caller =
      spawn(fn ->
        {:ok, ref} = Worker.open(worker, "Generate", long_request())
        {:item, _} = Worker.await(ref, 30_000)
        send(test, :streaming)
        Process.sleep(:infinity)
      end)

    assert_receive :streaming, 30_000
    Process.exit(caller, :kill)
    eventually(fn -> :sys.get_state(worker).calls == %{} end, 5_000)

    # The worker stays usable.
    assert {:ok, _} = Worker.call(worker, "Health", %HealthRequest{})
  end

  test "halting a stream early cancels the call", %{worker: worker} do
    assert [_, _] = worker |> Worker.stream("Generate", long_request()) |> Enum.take(2)
    assert :sys.get_state(worker).calls == %{}
  end

  test "await_ready returns once the model is loaded" do
    pid = start_supervised!(worker_spec([]), id: :fresh)
    assert Worker.info(pid).status != :ready
    assert :ok = Worker.await_ready(pid, 60_000)
    assert Worker.info(pid).status == :ready
  end

  @tag :tmp_dir
  test "a default model that cannot load reads as :failed with the reason", %{tmp_dir: tmp} do
    broken = Path.join(tmp, "broken-model")
    File.mkdir_p!(broken)
    File.write!(Path.join(broken, "config.json"), "{not json")
    pid = start_supervised!(worker_spec(env: %{"MODEL" => broken}), id: :broken)

    # Started, so jobs that bring their own model are not held up...
    assert :ok = Worker.await_ready(pid, 60_000)
    info = Worker.info(pid)
    assert info.status == :failed
    assert info.failure =~ broken
    # The reason comes from its own field, not cut out of a "failed: ..." string.
    refute info.failure =~ ~r/^failed/
    assert info.model == nil

    # /health shows users the same words as before the contract was typed.
    assert {200, _, body} = Health.show(%{worker: pid})
    assert {:ok, %{"worker" => worker, "model" => nil}} = Json.decode(body)
    assert %{"status" => "failed", "error" => error} = worker
    assert error == info.failure

    # ...but generation says why it cannot run.
    request = %GenerateRequest{
      input: {:prompt, "defmodule"},
      params: %SamplingParams{max_tokens: 2}
    }

    assert {:error, %Worker.Error{status: :unavailable, message: message}} = first(pid, request)
    assert message =~ "could not be loaded"
  end

  @tag :tmp_dir
  test "a model loaded by another client shows up in info/1", %{tmp_dir: tmp} do
    pid = start_supervised!(worker_spec(refresh_ms: 100), id: :refreshed)
    :ok = Worker.await_ready(pid, 60_000)
    assert Worker.info(pid).model.id == @model

    # The same weights under another name, as an external gRPC client might load them.
    other = Path.join(tmp, "other-model")
    File.ln_s!(@model, other)
    assert {:ok, _} = Worker.call(pid, "LoadModel", %LoadModelRequest{model: other}, 60_000)
    eventually(fn -> Worker.info(pid).model.id == other end, 10_000)
  end

  test "stopping the worker terminates the OS process" do
    pid = start_supervised!(worker_spec([]), id: :second)

    os_pid = eventually(fn -> Worker.info(pid).os_pid end)
    :ok = stop_supervised(:second)
    {_, status} = System.cmd("kill", ["-0", to_string(os_pid)], stderr_to_stdout: true)
    assert status != 0
  end

  defp worker_spec(opts) do
    base = [
      name: nil,
      python: Path.join(Config.root(), ".venv/bin/python"),
      cd: Config.root(),
      args: ["--no-grpc"],
      env: %{"MODEL" => @model}
    ]

    {Worker, Keyword.merge(base, opts)}
  end

  defp long_request do
    %GenerateRequest{input: {:prompt, "defmodule Long do\n  @moduledoc \"\"\"\n"}, params: @long}
  end

  defp first(worker, request) do
    {:ok, ref} = Worker.open(worker, "Generate", request)
    Worker.await(ref, 30_000)
  end

  defp drain(ref) do
    case Worker.await(ref, 5_000) do
      {:item, _} -> drain(ref)
      other -> other
    end
  end
end
