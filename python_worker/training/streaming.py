"""Run a job function in a thread and hand its events out as an iterator.

The trainer reports through callbacks deep inside its loop, so a generator
cannot yield from there; the job runs in its own thread and the caller's
iterator reads a queue. If the caller stops iterating (a client went away),
the job's cancel event is set and the thread joined: nothing is left running,
and a training job still saves its checkpoint on the way out.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator

from python_worker.training.events import Emit, Event

_DONE = object()


def run_streaming(
    job: Callable[[Emit, threading.Event], object], cancel: threading.Event, name: str
) -> Iterator[Event]:
    events: queue.Queue = queue.Queue()

    def target() -> None:
        try:
            job(events.put, cancel)
        finally:
            events.put(_DONE)

    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = events.get()
            if item is _DONE:
                break
            yield item
    finally:
        if thread.is_alive():
            cancel.set()
        thread.join()
