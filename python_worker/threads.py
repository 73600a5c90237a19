"""Running blocking work off the event loop, in daemon threads.

Daemon threads rather than asyncio.to_thread: a model load or a training step
still running when the worker exits (EOF on the port) must not hold the
process open, and asyncio.run() waits for its default executor's threads.

    info = await run_in_thread(backend.load, options)
    async for event in iterate_in_thread(train_events(request, job.cancel_event)):
        yield event

Work that reports through a callback (a decode loop, a trainer's callbacks)
rather than as an iterator runs under stream_in_thread (async consumer) or
run_streaming (blocking consumer, such as the job RPCs' event generators).
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

_DONE = object()


def _call_soon(loop: asyncio.AbstractEventLoop, fn: Callable[..., None], *args: Any) -> bool:
    try:
        loop.call_soon_threadsafe(fn, *args)
        return True
    except RuntimeError:  # the loop is closed: the process is exiting
        return False


async def run_in_thread(fn: Callable[..., T], *args: Any) -> T:
    """Await fn(*args) computed in a daemon thread."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: Any, exc: BaseException | None) -> None:
        if future.done():  # the awaiting coroutine was cancelled meanwhile
            return
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)

    def target() -> None:
        try:
            result = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the awaiting coroutine
            _call_soon(loop, settle, None, exc)
        else:
            _call_soon(loop, settle, result, None)

    threading.Thread(target=target, name=f"run:{getattr(fn, '__name__', 'fn')}", daemon=True).start()
    return await future


async def stream_in_thread(
    work: Callable[[Callable[[T], bool], threading.Event], object], name: str
) -> AsyncIterator[T]:
    """Async iteration over what work(emit, stop) emits from a daemon thread.

    For blocking work that reports through a callback rather than as an
    iterator. emit(item) hands an item to the consumer and returns False (having
    set `stop`) once the event loop has closed: nobody is listening any more.
    An exception from work is raised in the consumer after the items emitted
    before it. `stop` is set whenever the consumer stops (end, error, cancel,
    aclose); work checks it to end early.
    """
    loop = asyncio.get_running_loop()
    items: asyncio.Queue[Any] = asyncio.Queue()
    stop = threading.Event()

    def emit(item: Any) -> bool:
        if _call_soon(loop, items.put_nowait, item):
            return True
        stop.set()
        return False

    def target() -> None:
        try:
            work(emit, stop)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
            emit(exc)
        finally:
            emit(_DONE)

    threading.Thread(target=target, name=name, daemon=True).start()
    try:
        while True:
            item = await items.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def iterate_in_thread(iterator: Iterator[T], name: str = "iterate") -> AsyncIterator[T]:
    """Async iteration over a blocking iterator, advanced in a daemon thread.

    When the consumer stops early (cancel, aclose), the thread stops after the
    item it is computing and closes the iterator there, so its own cleanup
    (finally blocks, generator close) runs on the thread that drove it.
    """

    def pump(emit: Callable[[T], bool], stop: threading.Event) -> None:
        try:
            for item in iterator:
                if stop.is_set() or not emit(item):
                    break
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    return stream_in_thread(pump, name)


def run_streaming(
    job: Callable[[Callable[[T], None], threading.Event], R], cancel: threading.Event, name: str
) -> Generator[T, None, R]:
    """Run job(emit, cancel) in a daemon thread; yield what it emits; return what it returns.

    The synchronous counterpart of stream_in_thread, for callers that are
    themselves blocking iterators (the job RPCs, which iterate_in_thread then
    drives). A job that raises has its exception raised here after the items
    it emitted. If the caller stops iterating (a client went away), `cancel`
    is set and the thread joined: nothing is left running.
    """
    events: queue.Queue[Any] = queue.Queue()
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["result"] = job(events.put, cancel)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
            outcome["error"] = exc
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
        # Reached on normal exit and when the consumer closes the stream early.
        if thread.is_alive():
            cancel.set()
        thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]
