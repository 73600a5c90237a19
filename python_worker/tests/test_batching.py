"""Continuous batching on the real tiny model: batched output equals solo output,
mixed adapters, per-request sampling, backpressure and cancellation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import aclosing
from pathlib import Path
from typing import Any

import grpc
import pytest

from python_worker.errors import WorkerError
from python_worker.serving.base import Delta, LoadOptions, SamplingOptions, TextPrompt
from python_worker.serving.batching import BASE_ADAPTER
from python_worker.serving.transformers_backend import TransformersBackend

# 20 distinct prompts of different lengths, so rows join with different padding.
PROMPTS = [f"defmodule Mod{i} do\n" + "  # note\n" * (i % 5) + f"  def run{i}(x), do: x + {i}\n" for i in range(20)]


def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll a condition with a deadline (tests never sleep to synchronise)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.002)


async def collect(backend: TransformersBackend, ids: list[int], options: SamplingOptions, **kw: Any) -> list[Delta]:
    return [d async for d in backend.generate(ids, options, **kw)]


def tokens(deltas: list[Delta]) -> list[int]:
    return [t for d in deltas for t in d.token_ids]


def solo_and_batched(
    backend: TransformersBackend, jobs: list[tuple[list[int], SamplingOptions, str | None]]
) -> tuple[list[list[Delta]], list[list[Delta]]]:
    solo = [asyncio.run(collect(backend, ids, options, adapter=adapter)) for ids, options, adapter in jobs]

    async def together() -> list[list[Delta]]:
        return list(
            await asyncio.gather(*(collect(backend, ids, options, adapter=adapter) for ids, options, adapter in jobs))
        )

    before = backend.engine.max_rows_seen
    backend.engine.max_rows_seen = 0
    batched = asyncio.run(together())
    # The comparison means something only if the requests really shared steps.
    assert backend.engine.max_rows_seen >= len(jobs) // 2, backend.engine.max_rows_seen
    backend.engine.max_rows_seen = max(before, backend.engine.max_rows_seen)
    return solo, batched


def test_greedy_output_is_identical_alone_and_batched(backend: TransformersBackend) -> None:
    jobs = [(backend.encode(TextPrompt(p)), SamplingOptions(max_tokens=48), None) for p in PROMPTS]
    solo, batched = solo_and_batched(backend, jobs)
    assert len({tuple(tokens(s)) for s in solo}) > 1  # distinct prompts, distinct outputs
    for alone, together in zip(solo, batched, strict=True):
        assert tokens(together) == tokens(alone)
        assert "".join(d.text for d in together) == "".join(d.text for d in alone)
        assert together[-1].finish_reason == alone[-1].finish_reason


def test_each_request_keeps_its_own_sampling_and_stops(backend: TransformersBackend) -> None:
    ids = [backend.encode(TextPrompt(p)) for p in PROMPTS[:6]]
    greedy_text = "".join(d.text for d in asyncio.run(collect(backend, ids[2], SamplingOptions(max_tokens=30))))
    stop = greedy_text[5:8]
    assert stop.strip(), greedy_text
    jobs = [
        (ids[0], SamplingOptions(max_tokens=30, temperature=0.9, top_p=0.9, seed=7), None),
        (ids[1], SamplingOptions(max_tokens=30, temperature=1.2, seed=99), None),
        (ids[2], SamplingOptions(max_tokens=30, stop=(stop,)), None),
        (ids[3], SamplingOptions(max_tokens=5), None),
        (ids[4], SamplingOptions(max_tokens=30), None),
        (ids[5], SamplingOptions(max_tokens=1), None),
    ]
    solo, batched = solo_and_batched(backend, jobs)
    for alone, together in zip(solo, batched, strict=True):
        assert tokens(together) == tokens(alone)
    assert "".join(d.text for d in batched[2]) == greedy_text[: greedy_text.index(stop)]
    assert len(tokens(batched[3])) == 5 and len(tokens(batched[5])) == 1


@pytest.fixture(scope="module")
def adapted(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> TransformersBackend:
    """The tiny model with two random (non-zero) LoRA adapters loaded beside the base,
    the way the adapter registry loads them (`model.load_adapter`)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    root = tmp_path_factory.mktemp("adapters")
    for seed, name in ((1, "alpha"), (2, "beta")):
        import torch

        torch.manual_seed(seed)
        base = AutoModelForCausalLM.from_pretrained(tiny_model)
        config = LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
        get_peft_model(base, config).save_pretrained(root / name)
    backend = TransformersBackend()
    backend.load(LoadOptions(str(tiny_model), device="cpu"))
    for name in ("alpha", "beta"):
        backend.model.load_adapter(str(root / name), adapter_name=name)
    return backend


def test_mixed_adapter_batch_equals_each_adapters_solo_output(adapted: TransformersBackend) -> None:
    names: list[str | None] = [BASE_ADAPTER, "alpha", "beta", None]
    jobs = [
        (adapted.encode(TextPrompt(p)), SamplingOptions(max_tokens=32), names[i % 4]) for i, p in enumerate(PROMPTS)
    ]
    solo, batched = solo_and_batched(adapted, jobs)
    for alone, together in zip(solo, batched, strict=True):
        assert tokens(together) == tokens(alone)
    # Same prompt through each adapter: the adapters really change the output.
    ids = jobs[0][0]
    outputs = {
        name: tokens(asyncio.run(collect(adapted, ids, SamplingOptions(max_tokens=32), adapter=name)))
        for name in (BASE_ADAPTER, "alpha", "beta")
    }
    assert len({tuple(v) for v in outputs.values()}) == 3, outputs
    # A request that names no adapter gets the base model, not the last loaded adapter.
    assert tokens(asyncio.run(collect(adapted, ids, SamplingOptions(max_tokens=32)))) == outputs[BASE_ADAPTER]


def test_an_adapter_that_is_not_loaded_is_not_found(adapted: TransformersBackend) -> None:
    with pytest.raises(WorkerError) as raised:
        asyncio.run(collect(adapted, [1, 2, 3], SamplingOptions(max_tokens=2), adapter="gamma"))
    assert raised.value.code == grpc.StatusCode.NOT_FOUND
    assert "gamma" in raised.value.message and "alpha" in raised.value.message


@pytest.fixture
def one_slot(tiny_model: Path) -> TransformersBackend:
    """A batch of one and a queue of two, so a long request makes the others wait."""
    backend = TransformersBackend(max_batch_size=1, max_waiting=2)
    backend.load(LoadOptions(str(tiny_model), device="cpu"))
    yield backend
    backend.close()


def test_past_the_bound_requests_are_refused_and_a_cancel_frees_a_slot(one_slot: TransformersBackend) -> None:
    engine = one_slot.engine
    ids = one_slot.encode(TextPrompt(PROMPTS[0]))

    async def scenario() -> None:
        long = aclosing(one_slot.generate(ids, SamplingOptions(max_tokens=2000)))
        async with long as running:
            await anext(running)  # admitted: it holds the only batch slot
            waiting = [one_slot.generate(ids, SamplingOptions(max_tokens=4)) for _ in range(2)]
            first, second = (asyncio.ensure_future(anext(w)) for w in waiting)
            await asyncio.to_thread(until, lambda: engine.waiting() == 2)
            with pytest.raises(WorkerError) as raised:
                await anext(one_slot.generate(ids, SamplingOptions(max_tokens=4)))
            assert raised.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "MAX_WAITING_REQUESTS" in raised.value.message
            # An abandoned waiting request frees its slot at once.
            second.cancel()
            await asyncio.gather(second, return_exceptions=True)
            await waiting[1].aclose()
            assert engine.waiting() == 1
            third = one_slot.generate(ids, SamplingOptions(max_tokens=4))
            third_first = asyncio.ensure_future(anext(third))
            await asyncio.to_thread(until, lambda: engine.waiting() == 2)
        # The long stream closed: the queued requests run to the end.
        assert (await first).token_ids
        assert (await third_first).token_ids
        for stream in (waiting[0], third):
            async for _ in stream:
                pass

    asyncio.run(scenario())


def test_an_abandoned_stream_does_not_delay_the_next_request(one_slot: TransformersBackend) -> None:
    engine = one_slot.engine
    ids = one_slot.encode(TextPrompt(PROMPTS[1]))

    async def scenario() -> list[Delta]:
        async with aclosing(one_slot.generate(ids, SamplingOptions(max_tokens=2000))) as stream:
            await anext(stream)
        # With one batch slot, the next request can only run once the abandoned one left.
        steps_before = engine.steps
        deltas = await collect(one_slot, ids, SamplingOptions(max_tokens=8))
        # The abandoned row left before the next step: at most one more step of it.
        assert engine.steps - steps_before <= 8 + 1
        return deltas

    assert len(tokens(asyncio.run(scenario()))) == 8


def test_a_finished_request_frees_its_slot_before_its_last_delta_arrives(tiny_model: Path) -> None:
    """A client that reads the end of its stream and sends the next request at
    once must not be refused by a queue that still counts the finished one."""
    import threading

    backend = TransformersBackend(max_batch_size=1, max_waiting=0)
    backend.load(LoadOptions(str(tiny_model), device="cpu"))
    try:
        engine = backend.engine
        ids = backend.encode(TextPrompt(PROMPTS[2]))
        options = SamplingOptions(max_tokens=3)
        follow_up: list[Any] = []
        finished = threading.Event()

        def then_next(delta: Delta) -> None:
            if delta.finish_reason is None:
                return
            if follow_up:  # the follow-up itself finished
                finished.set()
                return
            try:  # on the scheduler thread, right as the last delta of the first goes out
                follow_up.append(engine.submit(ids, options, None, then_next, follow_up.append))
            except WorkerError as exc:
                follow_up.append(exc)
                finished.set()

        engine.submit(ids, options, None, then_next, follow_up.append)
        assert finished.wait(60)
        assert not isinstance(follow_up[0], BaseException), follow_up[0]
    finally:
        backend.close()


def submit_together(
    engine: Any, jobs: list[tuple[list[int], SamplingOptions]], cancel: set[int] = frozenset()
) -> list[list[Delta]]:
    """Queue every job while holding the scheduler's lock, so one admission takes
    them all; return each one's deltas (the cancelled ones: none)."""
    import threading

    outputs: list[list[Delta]] = [[] for _ in jobs]
    done = [threading.Event() for _ in jobs]
    failures: list[BaseException] = []

    def on_delta(i: int) -> Callable[[Delta], None]:
        def put(delta: Delta) -> None:
            outputs[i].append(delta)
            if delta.finish_reason is not None:
                done[i].set()

        return put

    with engine._lock:  # re-entrant: submit takes it too, the scheduler cannot
        requests = [
            engine.submit(ids, options, None, on_delta(i), failures.append) for i, (ids, options) in enumerate(jobs)
        ]
        for i in cancel:
            engine.cancel(requests[i])
    for i, event in enumerate(done):
        if i not in cancel:
            assert event.wait(60), f"request {i} did not finish"
    assert not failures, failures
    return outputs


def test_one_admission_prefills_prompts_of_many_lengths_in_one_forward(backend: TransformersBackend) -> None:
    engine = backend.engine
    # Lengths from a few tokens to well over a hundred, so most rows are mostly padding.
    texts = [f"defmodule L{i} do\n" + "  @attr :value\n" * (i * i % 23) for i in range(16)]
    ids = [backend.encode(TextPrompt(t)) for t in texts]
    assert len({len(i) for i in ids}) >= 10 and max(map(len, ids)) > 5 * min(map(len, ids))
    longest = max(range(len(ids)), key=lambda i: len(ids[i]))
    # The longest prompt finishes at its first token, so its columns leave at once;
    # one request is cancelled while it waits.
    options = [SamplingOptions(max_tokens=1 if i == longest else 24) for i in range(len(ids))]
    cancelled = {(longest + 1) % len(ids)}
    solo = [asyncio.run(collect(backend, i, o)) for i, o in zip(ids, options, strict=True)]

    prefills, steps = engine.prefills, engine.steps
    engine.max_rows_seen = 0
    together = submit_together(engine, list(zip(ids, options, strict=True)), cancelled)
    assert engine.prefills == prefills + 1  # one batched prefill, not one per request
    assert engine.max_rows_seen == len(ids) - 2  # all but the cancelled and the one-token request
    assert engine.steps - steps <= 24  # and they decoded together
    for i, (alone, batched) in enumerate(zip(solo, together, strict=True)):
        if i in cancelled:
            assert batched == []
            continue
        assert tokens(batched) == tokens(alone), i
        assert "".join(d.text for d in batched) == "".join(d.text for d in alone)
        assert batched[-1].finish_reason == alone[-1].finish_reason
    assert len(tokens(together[longest])) == 1
