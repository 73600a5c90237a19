defmodule DevstralElixir.Jobs.JobTest do
  use ExUnit.Case, async: true

  alias DevstralElixir.Jobs.{Job, Queue}

  test "to_json gives string keys, ISO times and JSON-safe args/progress/result" do
    now = ~U[2026-11-22 10:00:00.000000Z]

    job = %Job{
      id: 7,
      type: :train_stage,
      state: :running,
      args: %{"stage" => 2, pid: self(), tuple: {1, 2}},
      progress: %{step: 3, metrics: %{"loss" => 1.5}, kind: :PROGRESS},
      result: nil,
      attempts: 1,
      resource: "worker:default",
      inserted_at: now,
      updated_at: now,
      scheduled_at: now,
      pid: self()
    }

    json = Job.to_json(job)
    assert json["type"] == "train_stage"
    assert json["state"] == "running"
    assert json["inserted_at"] == "2026-11-22T10:00:00.000000Z"
    assert json["started_at"] == nil
    assert json["args"]["stage"] == 2
    assert json["args"]["pid"] =~ "#PID<"
    assert json["args"]["tuple"] == "{1, 2}"
    assert json["progress"] == %{"step" => 3, "metrics" => %{"loss" => 1.5}, "kind" => "PROGRESS"}
    refute Map.has_key?(json, "pid")
    # And jiffy can encode all of it.
    assert is_binary(DevstralElixir.Web.Json.encode(json))
  end

  test "parse_type and parse_state accept atoms and names, never make atoms" do
    assert Job.parse_type("build_dataset") == {:ok, :build_dataset}
    assert Job.parse_type(:curriculum) == {:ok, :curriculum}
    assert Job.parse_type("nonexistent_type_xyz") == :error
    assert Job.parse_type(42) == :error
    assert Job.parse_state("cancelled") == {:ok, :cancelled}
    assert Job.parse_state("done") == :error
    assert Job.final?(:failed)
    refute Job.final?(%Job{state: :queued})
  end

  test "backoff doubles per attempt up to the cap" do
    assert Enum.map(1..6, &Queue.backoff_ms(&1, 1_000, 10_000)) ==
             [1_000, 2_000, 4_000, 8_000, 10_000, 10_000]

    assert Queue.backoff_ms(1_000_000, 1_000, 600_000) == 600_000
  end

  test "start options are checked" do
    assert_raise ArgumentError, ~r/unknown keys \[:limt\]/, fn -> Queue.start_link(limt: 1) end
    assert_raise ArgumentError, ~r/:limit option/, fn -> Queue.start_link(limit: -1) end

    assert_raise ArgumentError, ~r/:runners option/, fn ->
      Queue.start_link(runners: %{bogus: Foo})
    end
  end
end
