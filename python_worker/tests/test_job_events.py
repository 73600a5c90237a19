"""The one job-event model: every kind reaches the proto by name, and closing the stream stops the job."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from python_worker import job_events
from python_worker.job_events import Event, finite, ms, proto_stream, to_proto
from python_worker.proto import worker_pb2

JobEvent = worker_pb2.JobEvent
KINDS = ["PROGRESS", "LOG", "METRICS", "CHECKPOINT", "COMPLETED", "FAILED", "CANCELLED"]


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_maps_to_the_enum_value_of_that_name(kind: str) -> None:
    assert getattr(job_events, kind) == kind
    assert to_proto(Event(kind), "j").kind == JobEvent.Kind.Value(kind)


def test_every_field_is_copied() -> None:
    event = Event(
        "PROGRESS", "scan", "3 of 4", step=3, total_steps=4, elapsed_ms=1500, eta_ms=500,
        metrics={"rows": 2.0}, artifact_path="/out",
    )  # fmt: skip
    proto = to_proto(event, "job-1")
    assert (proto.job_id, proto.phase, proto.message) == ("job-1", "scan", "3 of 4")
    assert (proto.step, proto.total_steps, proto.elapsed_ms, proto.eta_ms) == (3, 4, 1500, 500)
    assert dict(proto.metrics) == {"rows": 2.0} and proto.artifact_path == "/out"


def test_an_unknown_kind_fails_where_it_is_made() -> None:
    with pytest.raises(ValueError, match="unknown job event kind 'progress'"):
        Event("progress")


def test_finite_drops_what_json_and_the_host_cannot_take() -> None:
    assert finite({"a": 1, "b": float("nan"), "c": None, "d": True, "e": float("inf"), "f": 0.5}) == {
        "a": 1.0,
        "f": 0.5,
    }
    assert ms(1.2345) == 1234


def test_closing_the_proto_stream_closes_the_events() -> None:
    closed = []

    def events() -> Iterator[Event]:
        try:
            while True:
                yield Event("PROGRESS")
        finally:
            closed.append(True)

    stream = proto_stream(events(), "j")
    assert next(stream).kind == JobEvent.PROGRESS
    stream.close()
    assert closed == [True]
