"""One place that records a benchmark result: print it and save it with its provenance.

Every bench ends with `emit(name, result)`. It prints the result as one JSON line
(the contract of `make bench`) and writes `bench/results/NAME.json` with the commit,
the date and the machine, so a figure quoted in the README names the file it came
from and the code that produced it.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[1]


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def provenance() -> dict:
    """The commit (with `+dirty` when the tree has uncommitted changes), date and machine."""
    commit = _git("rev-parse", "--short", "HEAD")
    # Results files are tracked too; a bench that ran before this one must not
    # make the code it measured look modified.
    if _git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench/results"):
        commit += "+dirty"
    return {
        "commit": commit,
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpu": _cpu_model(),
            "cores": os.cpu_count(),
            "memory_gib": _memory_gib(),
            "platform": platform.platform(),
        },
    }


def emit(name: str, result: dict, save: bool = True) -> dict:
    """Print `result` as one JSON line and save it, with provenance, as results/NAME.json.

    The file is written to a temporary name and renamed, so a reader never sees half a
    result. `save=False` (a smoke run with toy sizes) prints without overwriting the
    committed figure.
    """
    record = {"bench": name, **result, **provenance()}
    line = json.dumps(record, sort_keys=False)
    print(line, flush=True)
    if save:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        target = RESULTS_DIR / f"{name}.json"
        tmp = target.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, target)
    return record
