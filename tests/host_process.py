"""Starts and stops the real host the way `make run` does, for tests and benchmarks.

with HostProcess() as host:
    requests to host.url ...
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Self

import psutil

ROOT = Path(__file__).resolve().parents[1]
TINY_MODEL = ROOT / "data" / "models" / "tiny-elixir"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str, timeout: float = 5.0) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def post_json(
    url: str, body: bytes | dict[str, Any], token: str | None = None, timeout: float = 60.0
) -> tuple[int, Any]:
    """POST a JSON body (bytes are sent as they are); the status and the decoded answer."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


class HostProcess:
    """`make run` in its own process group, on free ports and a private DATA_DIR."""

    def __init__(
        self,
        data_dir: Path,
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
        default_model: bool = False,
    ):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        self.log_path = log_path or data_dir / "host.log"
        # Tests pin the random tiny model (its id and outputs never move when the
        # shipped base is retrained); `default_model=True` leaves MODEL unset, as
        # a user would, so the host picks its own default.
        inherited = {k: v for k, v in os.environ.items() if k != "MODEL"}
        pinned = {} if default_model else {"MODEL": str(TINY_MODEL)}
        self.env = {
            **inherited,
            **pinned,
            "HTTP_PORT": str(self.port),
            "GRPC_PORT": "0",
            "DATA_DIR": str(data_dir),
            **(env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 180.0, until: str = "ready") -> Self:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")  # noqa: SIM115 - owned by the child for its lifetime
        self.process = subprocess.Popen(
            ["make", "--no-print-directory", "run"],
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.wait_ready(timeout, until)
        return self

    def health(self) -> dict[str, Any] | None:
        try:
            status, body = get_json(f"{self.url}/health", timeout=2.0)
        except OSError:
            return None
        return body if status == 200 else None

    def wait_ready(self, timeout: float, until: str = "ready") -> dict[str, Any]:
        """Polls /health until the worker's status is `until` ("ready" or "failed")."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"the host exited early:\n{self.log_tail()}")
            health = self.health()
            if health and health["worker"]["status"] == until:
                return health
            time.sleep(0.1)
        raise TimeoutError(f"the worker was not {until} in {timeout} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 20.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        # SIGTERM makes the BEAM stop its applications, so the worker gets its
        # own SIGTERM from the host; the process group catches stragglers.
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def kill(self) -> None:
        """SIGKILL the host: a crash, not a stop.

        The BEAM goes first: were the worker killed in the same instant, the
        BEAM could still see it exit and record a failed attempt before dying,
        which is a different scenario (a worker crash). The rest of the process
        group follows; the worker would also exit on its own at EOF of fd 3.
        """
        if self.process is None or self.process.poll() is not None:
            return
        for child in psutil.Process(self.process.pid).children(recursive=True):
            # Short-lived children (a `kill`, a shell) may be gone by now.
            with contextlib.suppress(psutil.NoSuchProcess):
                if child.name().startswith("beam"):
                    child.kill()
                    child.wait(10)
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def mix(self, *argv: str, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
        """Runs a Mix task pointed at this host (its HTTP port, and its data directory's admin token).

        With the host stopped, the task finds no host and runs in-process on the same data directory.
        """
        env = {**os.environ, "HTTP_PORT": str(self.port), "DATA_DIR": str(self.data_dir)}
        env.pop("ADMIN_TOKEN", None)
        return subprocess.run(
            ["mix", *argv], cwd=ROOT / "elixir", env=env, capture_output=True, text=True, timeout=timeout, check=False
        )

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
