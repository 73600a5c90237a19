"""Helpers to run worker subprocesses and wait on their output without sleeping."""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TINY_MODEL = REPO / "data" / "models" / "tiny-elixir"


class LogWatcher:
    """Collects a process's stderr lines in a thread; wait_for() blocks until one matches."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        self.proc = proc
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._pump, args=(proc.stderr,), daemon=True)
        self._thread.start()

    def _pump(self, stream) -> None:  # type: ignore[no-untyped-def]
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def wait_for(self, pattern: str, timeout: float = 60.0, start: int = 0) -> re.Match[str]:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = start
        with self._cond:
            while True:
                for line in self.lines[seen:]:
                    match = regex.search(line)
                    if match:
                        return match
                seen = len(self.lines)
                remaining = deadline - time.monotonic()
                if self._closed or remaining <= 0:
                    raise AssertionError(
                        f"no stderr line matched {pattern!r} within {timeout}s "
                        f"(exited: {self.proc.poll()}):\n" + self.text()
                    )
                self._cond.wait(remaining)

    def text(self) -> str:
        with self._cond:
            return "\n".join(self.lines[-80:])


def spawn_worker(args: list[str], env: dict[str, str], **kwargs) -> subprocess.Popen[bytes]:  # type: ignore[no-untyped-def]
    return subprocess.Popen(
        [sys.executable, "-m", "python_worker", *args],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        **kwargs,
    )


def spawn_port_worker(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int, int]:
    """Start `python -m python_worker port ARGS` with its fds 3/4 on pipes we hold.

    Returns (process, fd we write frames to, fd we read frames from). bash maps
    our pipe ends onto the child's fds 3 and 4, exactly as an Erlang port with
    :nouse_stdio does.
    """
    to_worker_r, to_worker_w = os.pipe()
    from_worker_r, from_worker_w = os.pipe()
    # Move the child's ends above 9 first, so mapping them onto 3/4 can't clobber them.
    to_worker_r, from_worker_w = (_above_nine(fd) for fd in (to_worker_r, from_worker_w))
    script = (
        f'exec "$0" -m python_worker port "$@" 3<&{to_worker_r} 4>&{from_worker_w} {to_worker_r}<&- {from_worker_w}>&-'
    )
    proc = subprocess.Popen(
        ["bash", "-c", script, sys.executable, *args],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        pass_fds=(to_worker_r, from_worker_w),
    )
    os.close(to_worker_r)
    os.close(from_worker_w)
    return proc, to_worker_w, from_worker_r


def _above_nine(fd: int) -> int:
    high = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return high


def stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> int:
    """Terminate a worker we started (by its own handle) and reap it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait(timeout)


def repo_path(*parts: str) -> Path:
    return REPO.joinpath(*parts)


def worker_env(**overrides: str) -> dict[str, str]:
    """Environment for a worker subprocess: one torch thread, the tiny model, debug-free logs."""
    env = {k: v for k, v in os.environ.items() if k not in _WORKER_VARS}
    env.update(
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONUNBUFFERED="1",
        GRPC_PORT="0",
        MODEL=str(TINY_MODEL),
        DEVICE="cpu",
    )
    env.update(overrides)
    return env


_WORKER_VARS = {
    "MODEL",
    "BACKEND",
    "DEVICE",
    "DTYPE",
    "GRPC_HOST",
    "GRPC_PORT",
    "WORKER_TOKEN",
    "MAX_FRAME_BYTES",
    "DATA_DIR",
    "LOG_LEVEL",
    "QDRANT_URL",
    "QDRANT_API_KEY",
}
