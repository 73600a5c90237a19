"""Blocking work off the event loop: results, errors, early close."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import aclosing

import pytest

from python_worker.threads import iterate_in_thread, run_in_thread


def test_run_in_thread_returns_and_raises() -> None:
    async def scenario() -> None:
        loop_thread = threading.current_thread()
        assert await run_in_thread(lambda: threading.current_thread() is not loop_thread)
        with pytest.raises(ZeroDivisionError):
            await run_in_thread(lambda: 1 / 0)

    asyncio.run(scenario())


def test_iterate_in_thread_yields_everything_and_propagates_errors() -> None:
    def numbers() -> Iterator[int]:
        yield from range(5)
        raise ValueError("broken row")

    async def scenario() -> list[int]:
        seen: list[int] = []
        with pytest.raises(ValueError, match="broken row"):
            async for n in iterate_in_thread(numbers()):
                seen.append(n)
        return seen

    assert asyncio.run(scenario()) == [0, 1, 2, 3, 4]


def test_closing_early_closes_the_iterator_on_its_thread() -> None:
    closed = threading.Event()
    release = threading.Event()

    def endless() -> Iterator[int]:
        try:
            n = 0
            while True:
                yield n
                n += 1
                release.wait(5)
        finally:
            closed.set()

    async def scenario() -> int:
        async with aclosing(iterate_in_thread(endless())) as items:
            first = await anext(items)
        release.set()
        return first

    assert asyncio.run(scenario()) == 0
    assert closed.wait(5)
