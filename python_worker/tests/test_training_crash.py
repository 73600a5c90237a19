"""A training process killed with SIGKILL resumes from its last time-based checkpoint.

The run goes through the real command line (`python -m python_worker.training`)
in its own process, with `save_minutes` tiny and `save_steps` out of reach, so
every checkpoint it writes is one the clock asked for. After `kill -9` a second
process with `--resume` must continue from that checkpoint's step, not from 0.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from python_worker.tests.procs import REPO
from python_worker.tests.test_training_fixtures import write_dataset
from python_worker.training import checkpoints

# save_steps beyond max_steps: only the clock can trigger a checkpoint.
CONFIG = {
    "max_steps": 2000,
    "max_seq_length": 64,
    "batch_size": 2,
    "gradient_accumulation_steps": 1,
    "learning_rate": 5e-3,
    "save_steps": 100000,
    "save_minutes": 0.02,  # 1.2 s
    "save_total_limit": 3,
    "eval_steps": 100000,
    "max_eval_rows": 4,
    "early_stopping_patience": -1,
    "lora": {"r": 4, "alpha": 8},
}


class EventReader:
    """The JSON events a training process prints, collected by a thread; wait() polls with a deadline."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self.proc = proc
        self.events: list[dict] = []
        self.other: list[str] = []
        self._cond = threading.Condition()
        self._closed = False
        threading.Thread(target=self._pump, args=(proc.stdout,), daemon=True).start()

    def _pump(self, stream) -> None:  # type: ignore[no-untyped-def]
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").strip()
            with self._cond:
                try:
                    self.events.append(json.loads(line))
                except json.JSONDecodeError:
                    self.other.append(line)
                self._cond.notify_all()
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def wait(self, what: str, match, timeout: float = 240.0) -> dict:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for event in self.events[seen:]:
                    if match(event):
                        return event
                seen = len(self.events)
                remaining = deadline - time.monotonic()
                if self._closed or remaining <= 0:
                    tail = [json.dumps(e) for e in self.events[-15:]] + self.other[-30:]
                    raise AssertionError(f"no {what} within {timeout}s (exit {self.proc.poll()}):\n" + "\n".join(tail))
                self._cond.wait(remaining)


def start(model: Path, data: Path, out: Path, config: Path, *extra: str) -> tuple[subprocess.Popen[bytes], EventReader]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "python_worker.training", "--base-model", str(model), "--dataset", str(data),
         "--stage", "1", "--out", str(out), "--config", str(config), *extra],
        cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    return proc, EventReader(proc)


def is_timed_checkpoint(event: dict) -> bool:
    return event.get("kind") == "CHECKPOINT" and "min since the last" in event.get("message", "")


@pytest.mark.timeout(600)
def test_kill_9_resumes_from_the_time_based_checkpoint(tiny_model, tmp_path):
    data = write_dataset(tmp_path / "ds")
    config = tmp_path / "crash.json"
    config.write_text(json.dumps(CONFIG), encoding="utf-8")
    out = tmp_path / "out"

    proc, reader = start(tiny_model, data, out, config)
    try:
        saved = reader.wait("time-based checkpoint", is_timed_checkpoint)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    step = saved["step"]
    assert 0 < step < CONFIG["save_steps"], saved
    assert Path(saved["artifact_path"]).name == f"checkpoint-{step}"
    assert checkpoints.is_complete(Path(saved["artifact_path"]))
    # Another timed save may have started before the kill; resume takes the newest complete one.
    latest = checkpoints.latest(out)
    assert latest is not None
    resume_step = int(latest.name.removeprefix(checkpoints.PREFIX))
    assert resume_step >= step

    proc, reader = start(tiny_model, data, out, config, "--resume")
    try:
        began = reader.wait(
            "train-begin log", lambda e: e.get("kind") == "LOG" and e["message"].startswith("training ")
        )
        assert began["message"].startswith(f"training resumed at step {resume_step};"), began
        first = reader.wait("first step", lambda e: e.get("kind") == "PROGRESS" and e.get("phase") == "stage1")
        assert first["step"] == resume_step + 1
        # Ctrl-C: the CLI cancels cleanly, with a checkpoint, and exits 130.
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
