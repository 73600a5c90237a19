"""Job events as plain data: the one model every long job (dataset build, training, evaluation) emits.

Jobs compute in threads and never touch protobuf: they call an `Emit` with an
`Event`, and `to_proto` turns it into the `JobEvent` the host reads. Kinds are
the proto's enum names and times are milliseconds, so the conversion is a copy
and the host sees the same shape from every job.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

from python_worker.proto import worker_pb2

PROGRESS = "PROGRESS"
LOG = "LOG"
METRICS = "METRICS"
CHECKPOINT = "CHECKPOINT"
COMPLETED = "COMPLETED"
FAILED = "FAILED"
CANCELLED = "CANCELLED"

# Every kind the proto defines except the zero value, by the enum's own names.
_KINDS = {name: number for name, number in worker_pb2.JobEvent.Kind.items() if number != 0}


@dataclass
class Event:
    kind: str
    phase: str = ""
    message: str = ""
    step: int = 0
    total_steps: int = 0
    elapsed_ms: int = 0
    # 0 when unknown (proto3: zero means unset), as well as when the phase is done.
    eta_ms: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    artifact_path: str = ""

    def __post_init__(self) -> None:
        # A misspelt kind would otherwise only fail later, on the stream's thread.
        if self.kind not in _KINDS:
            raise ValueError(f"unknown job event kind {self.kind!r}; expected one of {sorted(_KINDS)}")

    def as_dict(self) -> dict:
        data = asdict(self)
        # JSON has no NaN/inf; drop them rather than emit invalid JSON.
        data["metrics"] = {k: v for k, v in self.metrics.items() if math.isfinite(v)}
        return data


Emit = Callable[[Event], None]


def ms(seconds: float) -> int:
    """Whole milliseconds of a duration in seconds (what the proto's *_ms fields carry)."""
    return int(seconds * 1000)


def finite(metrics: dict[str, float | int | None]) -> dict[str, float]:
    """Only the finite numbers (proto doubles could carry NaN, but consumers choke on it)."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int | float) and math.isfinite(value):
            out[key] = float(value)
    return out


def to_proto(event: Event, job_id: str) -> worker_pb2.JobEvent:
    return worker_pb2.JobEvent(
        job_id=job_id,
        kind=_KINDS[event.kind],
        phase=event.phase,
        message=event.message,
        step=event.step,
        total_steps=event.total_steps,
        elapsed_ms=event.elapsed_ms,
        eta_ms=event.eta_ms,
        metrics=event.metrics,
        artifact_path=event.artifact_path,
    )


def proto_stream(events: Iterator[Event], job_id: str) -> Iterator[worker_pb2.JobEvent]:
    """The events as JobEvents; closing this stream closes `events` at once (that cancels the job)."""
    try:
        for event in events:
            yield to_proto(event, job_id)
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()
