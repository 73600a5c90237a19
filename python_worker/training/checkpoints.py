"""Where a job keeps its resumable state under output_dir/checkpoints/.

    checkpoints/checkpoint-N/    written by the trainer every save_steps, every
                                 save_minutes and on cancel: adapter, optimizer.pt, scheduler.pt,
                                 rng_state.pth, trainer_state.json (global step,
                                 epoch, log history: the data position)
    checkpoints/baseline.json    eval losses measured before the first step
    checkpoints/guard.safetensors the forgetting guard's reference weights (and
                                 Fisher diagonal), fixed at the stage's start

The trainer writes trainer_state.json last, so a checkpoint directory without
it was cut short (a kill -9 mid-save) and is skipped.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

PREFIX = "checkpoint-"
_STEP = re.compile(rf"^{PREFIX}(\d+)$")


def root(output_dir: str | Path) -> Path:
    return Path(output_dir) / "checkpoints"


def baseline_path(output_dir: str | Path) -> Path:
    return root(output_dir) / "baseline.json"


def guard_path(output_dir: str | Path) -> Path:
    return root(output_dir) / "guard.safetensors"


def is_complete(path: Path) -> bool:
    return (path / "trainer_state.json").is_file() and (
        (path / "adapter_model.safetensors").is_file() or (path / "model.safetensors").is_file()
    )


def all_complete(output_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of every complete checkpoint, oldest first."""
    base = root(output_dir)
    if not base.is_dir():
        return []
    found = []
    for child in base.iterdir():
        match = _STEP.match(child.name)
        if match and child.is_dir() and is_complete(child):
            found.append((int(match.group(1)), child))
    return sorted(found)


def latest(output_dir: str | Path) -> Path | None:
    """The newest complete checkpoint, or None."""
    found = all_complete(output_dir)
    return found[-1][1] if found else None


def write_json_atomic(path: Path, data: Any) -> None:
    """Write to a temporary sibling, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
