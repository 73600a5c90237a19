"""The port transport end to end: `python -m python_worker port --no-grpc` on pipes as fds 3/4."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from python_worker.proto import worker_pb2 as pb
from python_worker.tests.port_client import Kind, PortClient
from python_worker.tests.procs import LogWatcher, spawn_port_worker, stop, worker_env

MAX_FRAME = 65536


class PortWorker:
    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.proc, write_fd, read_fd = spawn_port_worker(args, env)
        self.log = LogWatcher(self.proc)
        self.client = PortClient(write_fd, read_fd)

    def health(self, timeout: float = 30.0) -> pb.HealthResponse:
        call = self.client.call("Health", pb.HealthRequest(), timeout)
        assert call.closing is not None and call.closing.kind == Kind.END, call.frames
        (response,) = call.items(pb.HealthResponse)
        return response

    def wait_ready(self, timeout: float = 120.0) -> pb.HealthResponse:
        deadline = time.monotonic() + timeout
        while True:
            health = self.health()
            if health.state == pb.HealthResponse.READY:
                return health
            assert health.state == pb.HealthResponse.STARTING, health
            assert time.monotonic() < deadline, f"not ready after {timeout}s:\n{self.log.text()}"
            time.sleep(0.05)  # poll interval (polling with a deadline, not synchronisation)


@pytest.fixture(scope="module")
def worker(tiny_model: Path) -> Iterator[PortWorker]:
    started = PortWorker(["--no-grpc"], worker_env(MODEL=str(tiny_model), MAX_FRAME_BYTES=str(MAX_FRAME)))
    yield started
    # The host stops a worker by closing its end: EOF on fd 3 must make it exit 0.
    started.client.close_input()
    assert started.proc.wait(30) == 0, started.log.text()


def generate(prompt: str = "defmodule Foo do", **params: object) -> pb.GenerateRequest:
    return pb.GenerateRequest(prompt=prompt, params=pb.SamplingParams(**params))


def error_of(call) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    assert call.closing is not None and call.closing.kind == Kind.ERROR, call.frames
    return call.closing.status_code, call.closing.message


def test_health_answers_while_the_model_loads(worker: PortWorker) -> None:
    # The very first request is answered before torch is even imported.
    first = worker.health(timeout=15)
    assert first.state in (pb.HealthResponse.STARTING, pb.HealthResponse.READY)
    assert first.pid == worker.proc.pid  # bash exec'd the worker in place
    assert first.version and "transformers" in first.backends
    ready = worker.wait_ready()
    assert ready.model.backend == "transformers"
    assert ready.model.context_length == 2048
    assert ready.model.fim.prefix == "<|fim_prefix|>"
    assert ready.device == "cpu" and ready.uptime_ms >= first.uptime_ms


def test_generate_streams_items_then_end(worker: PortWorker) -> None:
    worker.wait_ready()
    call = worker.client.call("Generate", generate(max_tokens=12))
    assert call.closing is not None and call.closing.kind == Kind.END
    items = call.items(pb.GenerateResponse)
    # The first token goes out at once, not after a stream interval; tokens that
    # are ready when the writer runs share its frame, so on a loaded machine a
    # second (rarely a third) may ride with it. Later ones may share a message
    # (at most one per stream interval), the last carrying the finish reason.
    assert len(items) >= 2
    assert 1 <= len(items[0].token_ids) <= 3
    assert all(i.finish_reason == pb.FINISH_REASON_UNSPECIFIED for i in items[:-1])
    last = items[-1]
    assert last.finish_reason == pb.FINISH_REASON_LENGTH
    assert last.usage.completion_tokens == 12
    assert last.usage.total_tokens == last.usage.prompt_tokens + 12
    assert last.usage.time_to_first_token_us > 0
    assert sum(len(i.token_ids) for i in items) == 12


def test_concurrent_calls_are_multiplexed(worker: PortWorker) -> None:
    worker.wait_ready()
    client = worker.client
    expected = "".join(i.text for i in client.call("Generate", generate(max_tokens=40)).items(pb.GenerateResponse))
    gen_ids = [client.request("Generate", generate(max_tokens=40)) for _ in range(3)]
    health_id = client.request("Health", pb.HealthRequest())
    calls = {call_id: client.wait_closed(call_id) for call_id in [health_id, *gen_ids]}
    for call_id in gen_ids:
        call = calls[call_id]
        assert call.closing is not None and call.closing.kind == Kind.END
        assert "".join(i.text for i in call.items(pb.GenerateResponse)) == expected
    # Health, sent last, was answered while the generations were still streaming.
    order = [(cid, kind) for cid, kind in client.order if cid in calls]
    health_end = order.index((health_id, Kind.END))
    last_gen_end = max(order.index((cid, Kind.END)) for cid in gen_ids)
    assert health_end < last_gen_end
    # ...and the generations' frames interleave rather than run one after another.
    first_ends = min(order.index((cid, Kind.END)) for cid in gen_ids)
    assert len({cid for cid, _ in order[:first_ends]} & set(gen_ids)) > 1


def test_cancel_stops_generation_promptly(worker: PortWorker) -> None:
    worker.wait_ready()
    client = worker.client
    mark = len(worker.log.lines)
    call_id = client.request("Generate", generate(max_tokens=2000))
    first = client.next_for(call_id)
    assert first.kind == Kind.STREAM_ITEM
    cancelled_at = time.monotonic()
    client.cancel(call_id)
    call = client.wait_closed(call_id, timeout=10)
    assert time.monotonic() - cancelled_at < 5
    code, message = error_of(call)
    assert code == grpc.StatusCode.CANCELLED.value[0]
    assert "cancel" in message
    assert len(call.items(pb.GenerateResponse)) < 1999
    # The decode loop itself stopped (it logs the token it stopped at).
    worker.log.wait_for(r"generation cancelled after \d+ tokens", timeout=10, start=mark)
    assert worker.health().state == pb.HealthResponse.READY


def test_cancel_of_a_finished_call_is_ignored(worker: PortWorker) -> None:
    call = worker.client.call("Health", pb.HealthRequest())
    worker.client.cancel(call.call_id)
    assert worker.health().state in (pb.HealthResponse.STARTING, pb.HealthResponse.READY)


def test_oversized_frame_is_discarded_and_answered(worker: PortWorker) -> None:
    size = 1_000_000  # > MAX_FRAME: the worker must skip it without allocating it
    worker.client.send_raw(size.to_bytes(4, "big") + os.urandom(size))
    frame = worker.client.next_for(0)
    assert frame.kind == Kind.ERROR
    assert frame.status_code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    assert str(size) in frame.message and str(MAX_FRAME) in frame.message
    assert worker.health().pid == worker.proc.pid


def test_garbage_frame_is_answered_and_serving_continues(worker: PortWorker) -> None:
    garbage = b"\xff\xff\xff\xff"  # field 31 with wire type 7: not protobuf
    worker.client.send_raw(len(garbage).to_bytes(4, "big") + garbage)
    frame = worker.client.next_for(0)
    assert frame.kind == Kind.ERROR
    assert frame.status_code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "not a PortFrame" in frame.message
    assert worker.health().pid == worker.proc.pid


def test_unknown_method_is_unimplemented(worker: PortWorker) -> None:
    code, message = error_of(worker.client.call("Frobnicate", b""))
    assert code == grpc.StatusCode.UNIMPLEMENTED.value[0]
    assert "Frobnicate" in message


def test_undecodable_payload_is_invalid_argument(worker: PortWorker) -> None:
    code, message = error_of(worker.client.call("Generate", b"\xff\xff\xff"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "GenerateRequest" in message
    assert worker.health().pid == worker.proc.pid


def test_servicer_errors_carry_their_status(worker: PortWorker) -> None:
    worker.wait_ready()
    code, message = error_of(worker.client.call("Generate", pb.GenerateRequest(model="nope", prompt="x")))
    assert code == grpc.StatusCode.NOT_FOUND.value[0] and "nope" in message
    code, message = error_of(worker.client.call("Generate", generate(top_p=1.5)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT.value[0] and "top_p" in message
    code, message = error_of(worker.client.call("Embed", pb.EmbedRequest()))
    assert code == grpc.StatusCode.INVALID_ARGUMENT.value[0] and message.startswith("texts:")
    code, message = error_of(worker.client.call("Train", pb.TrainRequest(job_id="j")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT.value[0] and "stage" in message


def test_cancel_job_reports_unknown_jobs(worker: PortWorker) -> None:
    call = worker.client.call("CancelJob", pb.CancelJobRequest(job_id="no-such-job"))
    (response,) = call.items(pb.CancelJobResponse)
    assert response.found is False


def test_a_default_model_that_cannot_load_is_failed_with_its_reason(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    worker = PortWorker(["--no-grpc"], worker_env(MODEL=str(missing)))
    try:
        deadline = time.monotonic() + 60
        health = worker.health(timeout=20)
        while health.state == pb.HealthResponse.STARTING:
            assert time.monotonic() < deadline, f"still starting after 60s:\n{worker.log.text()}"
            time.sleep(0.05)  # poll interval (polling with a deadline, not synchronisation)
            health = worker.health()
        # An enum plus the reason on its own: nothing for the host to parse.
        assert health.state == pb.HealthResponse.FAILED, health
        assert health.reason == f"model directory {missing} does not exist"
        assert not health.HasField("model")
        code, message = error_of(worker.client.call("Generate", generate()))
        assert code == grpc.StatusCode.UNAVAILABLE.value[0] and health.reason in message
    finally:
        stop(worker.proc)


def test_eof_on_fd3_makes_the_worker_exit_zero(tiny_model: Path) -> None:
    worker = PortWorker(["--no-grpc"], worker_env(MODEL="none"))
    try:
        assert worker.health(timeout=20).state == pb.HealthResponse.READY  # no default model: ready at once
        worker.client.close_input()
        assert worker.proc.wait(20) == 0, worker.log.text()
        assert worker.client.eof.wait(5)  # it closed fd 4 too
    finally:
        stop(worker.proc)
