"""An ordered, back-pressured map over pool processes.

`Pool.imap` would read the whole task iterator up front and buffer every result
the coordinator has not consumed yet; on a large corpus that is unbounded
memory. Here at most `window` tasks are in flight, and results come back in
task order, so the coordinator sees files in the same order as a serial run.

The processes belong to a ProcessPoolExecutor rather than a multiprocessing
Pool: a pool process that dies (killed for memory, or unable to start) fails the
build with BrokenProcessPool instead of leaving a task that never returns.
They are started with "spawn": the builder also runs inside the gRPC worker,
and forking a process that has gRPC threads can deadlock. With one process,
tasks run inline (no processes, same results).
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, Self, TypeVar

from python_worker.dataset import file_tasks

T = TypeVar("T")
R = TypeVar("R")


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class ProcessPool:
    def __init__(self, processes: int, payload: dict[str, Any]) -> None:
        self.processes = max(1, processes)
        self._executor: ProcessPoolExecutor | None = None
        if self.processes == 1:
            file_tasks.init(payload)
        else:
            self._executor = ProcessPoolExecutor(
                max_workers=self.processes,
                mp_context=mp.get_context("spawn"),
                initializer=file_tasks.init,
                initargs=(payload,),
            )

    def map(self, fn: Callable[[T], R], tasks: Iterable[T], window: int = 0) -> Iterator[R]:
        if self._executor is None:
            for task in tasks:
                yield fn(task)
            return
        window = window or 3 * self.processes
        pending: deque[Future[R]] = deque()
        for task in tasks:
            pending.append(self._executor.submit(fn, task))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()

    def close(self) -> None:
        if self._executor is not None:
            # Queued tasks are dropped; a task already running finishes (seconds:
            # tasks are small) and its result is discarded.
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
