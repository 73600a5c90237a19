"""Coalescing of ready deltas: unit behaviour and the real backend with a slow consumer."""

from __future__ import annotations

import asyncio
import time

from python_worker.serving.base import Delta, FinishReason, SamplingOptions, TextPrompt
from python_worker.serving.transformers_backend import DeltaBuffer, TransformersBackend


def test_only_the_first_delta_of_a_batch_wakes_the_consumer() -> None:
    buffer, wakes = DeltaBuffer(), []

    def wake(item: object) -> bool:
        wakes.append(item)
        return True

    buffer.put(Delta("a", (1,)), wake)
    buffer.put(Delta("b", (2,)), wake)
    buffer.put(Delta("c", (3,), FinishReason.LENGTH), wake)
    assert len(wakes) == 1
    assert buffer.take() == Delta("abc", (1, 2, 3), FinishReason.LENGTH)
    assert buffer.take() is None
    buffer.put(Delta("d", (4,)), wake)
    assert len(wakes) == 2
    assert buffer.take() == Delta("d", (4,))


def test_within_the_interval_only_the_last_delta_wakes_the_consumer() -> None:
    buffer, wakes = DeltaBuffer(interval=60.0), []

    def wake(item: object) -> bool:
        wakes.append(item)
        return True

    buffer.put(Delta("a", (1,)), wake)  # the first delta never waits
    assert len(wakes) == 1
    assert buffer.take() == Delta("a", (1,))
    buffer.put(Delta("b", (2,)), wake)
    buffer.put(Delta("c", (3,)), wake)
    assert len(wakes) == 1  # held: the interval has not passed
    buffer.put(Delta("d", (4,), FinishReason.STOP), wake)
    assert len(wakes) == 2  # the end of the generation does not wait
    assert buffer.take() == Delta("bcd", (2, 3, 4), FinishReason.STOP)


def test_the_interval_starts_with_the_first_text() -> None:
    buffer, wakes = DeltaBuffer(interval=60.0), []

    def wake(item: object) -> bool:
        wakes.append(item)
        return True

    buffer.put(Delta("", (1,)), wake)  # e.g. half a UTF-8 character, held back
    buffer.take()
    buffer.put(Delta("é", (2,)), wake)  # the first text is not delayed
    assert len(wakes) == 2
    buffer.take()
    buffer.put(Delta("x", (3,)), wake)
    assert len(wakes) == 2


def test_a_single_delta_is_passed_through() -> None:
    buffer = DeltaBuffer()
    delta = Delta("x", (7,), FinishReason.STOP)
    buffer.put(delta, lambda _: True)
    assert buffer.take() is delta


def test_a_slow_consumer_gets_fewer_deltas_with_the_same_tokens(backend: TransformersBackend) -> None:
    """With no interval, what merges is only what was ready while the consumer was busy."""
    ids = backend.encode(TextPrompt("defmodule Queue do\n"))
    options = SamplingOptions(max_tokens=32)

    async def collect(pause: float) -> list[Delta]:
        deltas = []
        async for delta in backend.generate(ids, options):
            deltas.append(delta)
            if pause:
                await asyncio.sleep(pause)  # a consumer slower than the model, not a synchronisation
        return deltas

    interval, backend.stream_interval = backend.stream_interval, 0.0  # merging by readiness alone
    try:
        fast = asyncio.run(collect(0))
        slow = asyncio.run(collect(0.05))
    finally:
        backend.stream_interval = interval
    assert [t for d in slow for t in d.token_ids] == [t for d in fast for t in d.token_ids]
    assert "".join(d.text for d in slow) == "".join(d.text for d in fast)
    assert len(slow) < len(fast)
    assert sum(len(d.token_ids) > 1 for d in slow) >= 1
    assert slow[-1].finish_reason == fast[-1].finish_reason == FinishReason.LENGTH
    assert all(d.finish_reason is None for d in slow[:-1])


def test_many_streams_stretch_the_interval_to_share_the_delta_budget() -> None:
    # The shared budget asks for 60 s, far over the stream's own 1 ms: after the
    # first delta nothing but the end may wake the consumer.
    buffer, wakes = DeltaBuffer(interval=0.001, shared_interval=lambda: 60.0), []

    def wake(item: object) -> bool:
        wakes.append(item)
        return True

    buffer.put(Delta("a", (1,)), wake)
    buffer.take()
    time.sleep(0.01)  # past the own interval: only the shared one holds "b" back
    buffer.put(Delta("b", (2,)), wake)
    assert len(wakes) == 1
    buffer.put(Delta("c", (3,), FinishReason.STOP), wake)
    assert len(wakes) == 2


def test_a_zero_interval_ignores_the_shared_budget() -> None:
    buffer, wakes = DeltaBuffer(interval=0.0, shared_interval=lambda: 60.0), []

    def wake(item: object) -> bool:
        wakes.append(item)
        return True

    buffer.put(Delta("a", (1,)), wake)
    buffer.take()
    buffer.put(Delta("b", (2,)), wake)
    assert len(wakes) == 2
