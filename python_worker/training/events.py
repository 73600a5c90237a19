"""Job events as plain data, independent of protobuf (rpc.py converts them)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

PROGRESS = "PROGRESS"
LOG = "LOG"
METRICS = "METRICS"
CHECKPOINT = "CHECKPOINT"
COMPLETED = "COMPLETED"
FAILED = "FAILED"
CANCELLED = "CANCELLED"


@dataclass
class Event:
    kind: str
    phase: str = ""
    message: str = ""
    step: int = 0
    total_steps: int = 0
    elapsed_ms: int = 0
    eta_ms: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    artifact_path: str = ""

    def as_dict(self) -> dict:
        data = asdict(self)
        # JSON has no NaN/inf; drop them rather than emit invalid JSON.
        data["metrics"] = {k: v for k, v in self.metrics.items() if math.isfinite(v)}
        return data


Emit = Callable[[Event], None]


def finite(metrics: dict[str, float | int | None]) -> dict[str, float]:
    """Only the finite numbers (proto doubles could carry NaN, but consumers choke on it)."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int | float) and math.isfinite(value):
            out[key] = float(value)
    return out
