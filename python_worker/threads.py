"""Running blocking work off the event loop, in daemon threads.

Daemon threads rather than asyncio.to_thread: a model load or a training step
still running when the worker exits (EOF on the port) must not hold the
process open, and asyncio.run() waits for its default executor's threads.

    info = await run_in_thread(backend.load, options)
    async for event in iterate_in_thread(train_events(request, job.cancel_event)):
        yield event
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

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


async def iterate_in_thread(iterator: Iterator[T], name: str = "iterate") -> AsyncIterator[T]:
    """Async iteration over a blocking iterator, advanced in a daemon thread.

    When the consumer stops early (cancel, aclose), the thread stops after the
    item it is computing and closes the iterator there, so its own cleanup
    (finally blocks, generator close) runs on the thread that drove it.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    stop = threading.Event()

    def pump() -> None:
        try:
            for item in iterator:
                if stop.is_set() or not _call_soon(loop, queue.put_nowait, item):
                    break
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
            _call_soon(loop, queue.put_nowait, exc)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
            _call_soon(loop, queue.put_nowait, _DONE)

    threading.Thread(target=pump, name=name, daemon=True).start()
    try:
        while True:
            item = await queue.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
