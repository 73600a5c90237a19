"""The registry of running jobs, so CancelJob can stop them by id.

Long-running work (BuildDataset, Train, Evaluate) registers itself for as long as
it runs and checks its cancel event between steps:

    with registry.running(request.job_id, "train") as job:
        for step in ...:
            if job.cancelled:
                break                      # then stream a CANCELLED JobEvent
        job.on_cancel(process.terminate)  # or: be told, e.g. to stop a subprocess

The event is a threading.Event because jobs compute in threads (or watch child
processes) rather than on the event loop; CancelJob sets it from the loop.
Cancelling the call itself (a client cancel, or CANCEL on the port) cancels the
job's task; its `with` block exits and unregisters it either way.

A job that notices the event outside a loop that can just stop raises
`Cancelled`; its stream turns that into the CANCELLED JobEvent.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import grpc

from python_worker.errors import WorkerError, invalid_argument

log = logging.getLogger(__name__)


class Cancelled(Exception):
    """A job saw its cancel event set and stopped early; the message says where."""


@dataclass
class Job:
    job_id: str
    kind: str
    started: float = field(default_factory=time.monotonic)
    cancel_event: threading.Event = field(default_factory=threading.Event)
    _callbacks: list[Callable[[], None]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def on_cancel(self, callback: Callable[[], None]) -> None:
        """Run callback when the job is cancelled (at once if it already is)."""
        with self._lock:
            if not self.cancel_event.is_set():
                self._callbacks.append(callback)
                return
        callback()

    def cancel(self) -> None:
        with self._lock:
            if self.cancel_event.is_set():
                return
            self.cancel_event.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:  # one failing callback must not stop the others
                log.exception("cancel callback of job %s failed", self.job_id)


class JobRegistry:
    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def register(self, job_id: str, kind: str) -> Job:
        if not job_id:
            raise invalid_argument("job_id is required")
        with self._lock:
            if job_id in self._jobs:
                raise WorkerError(grpc.StatusCode.ALREADY_EXISTS, f"job {job_id} is already running")
            job = self._jobs[job_id] = Job(job_id, kind)
        log.info("job %s (%s) started", job_id, kind)
        return job

    def unregister(self, job_id: str) -> None:
        with self._lock:
            self._jobs.pop(job_id, None)

    @contextmanager
    def running(self, job_id: str, kind: str) -> Iterator[Job]:
        job = self.register(job_id, kind)
        try:
            yield job
        finally:
            self.unregister(job_id)

    def cancel(self, job_id: str) -> bool:
        """Cancel a running job; False when no job has that id."""
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            return False
        log.info("job %s cancel requested", job_id)
        job.cancel()
        return True

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def list(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())

    def cancel_all(self) -> None:
        for job in self.list():
            job.cancel()
