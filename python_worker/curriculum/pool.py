"""An ordered, back-pressured map over worker processes.

`Pool.imap` would read the whole task iterator up front and buffer every result
the coordinator has not consumed yet; on a large corpus that is unbounded
memory. Here at most `window` tasks are in flight, and results come back in
task order, so the coordinator sees files in the same order as a serial run.

Processes are started with "spawn": the builder also runs inside the gRPC
worker, and forking a process that has gRPC threads can deadlock.
With one worker, tasks run inline (no processes, same results).
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Self, TypeVar

from python_worker.curriculum import worker

T = TypeVar("T")
R = TypeVar("R")


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class WorkerPool:
    def __init__(self, processes: int, payload: dict[str, Any]) -> None:
        self.processes = max(1, processes)
        self._pool = None
        if self.processes == 1:
            worker.init(payload)
        else:
            ctx = mp.get_context("spawn")
            self._pool = ctx.Pool(self.processes, initializer=worker.init, initargs=(payload,))

    def map(self, fn: Callable[[T], R], tasks: Iterable[T], window: int = 0) -> Iterator[R]:
        if self._pool is None:
            for task in tasks:
                yield fn(task)
            return
        window = window or 3 * self.processes
        pending: deque = deque()
        for task in tasks:
            pending.append(self._pool.apply_async(fn, (task,)))
            if len(pending) >= window:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
