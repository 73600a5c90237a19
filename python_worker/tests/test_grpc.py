"""The gRPC transport end to end: a grpc.aio client against `python -m python_worker serve`."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from python_worker.proto import worker_pb2 as pb
from python_worker.proto import worker_pb2_grpc
from python_worker.tests.port_client import Kind, PortClient
from python_worker.tests.procs import (
    LogWatcher,
    spawn_port_worker,
    spawn_worker,
    stop,
    worker_env,
)

LISTENING = r"grpc listening on [\d.]+:(\d+)"


class GrpcWorker:
    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.proc = spawn_worker(args, env)
        self.log = LogWatcher(self.proc)
        self.port = int(self.log.wait_for(LISTENING, timeout=60).group(1))
        self.target = f"127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def server(tiny_model: Path) -> Iterator[GrpcWorker]:
    started = GrpcWorker(["serve"], worker_env(MODEL=str(tiny_model)))
    asyncio.run(wait_serving(started.target))
    yield started
    assert stop(started.proc) == 0, started.log.text()  # SIGTERM stops it gracefully


async def wait_serving(target: str, timeout: float = 120.0) -> None:
    """Watch the standard health service until it says SERVING (no polling)."""
    async with grpc.aio.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        watch = stub.Watch(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        async for update in watch:
            if update.status == health_pb2.HealthCheckResponse.SERVING:
                watch.cancel()
                return
    raise AssertionError("health watch ended before SERVING")


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


async def collect(target: str, request: pb.GenerateRequest) -> list[pb.GenerateResponse]:
    async with grpc.aio.insecure_channel(target) as channel:
        return [r async for r in worker_pb2_grpc.WorkerStub(channel).Generate(request, timeout=60)]


async def rpc_error(target: str, method: str, request: object) -> grpc.aio.AioRpcError:
    async with grpc.aio.insecure_channel(target) as channel:
        call = getattr(worker_pb2_grpc.WorkerStub(channel), method)(request, timeout=60)
        try:
            if hasattr(call, "__aiter__"):
                async for _ in call:
                    pass
            else:
                await call
        except grpc.aio.AioRpcError as exc:
            return exc
    raise AssertionError(f"{method} succeeded")


def test_health_reports_the_loaded_model(server: GrpcWorker) -> None:
    async def health() -> pb.HealthResponse:
        async with grpc.aio.insecure_channel(server.target) as channel:
            return await worker_pb2_grpc.WorkerStub(channel).Health(pb.HealthRequest(), timeout=10)

    response = run(health())
    assert response.state == pb.HealthResponse.READY and response.reason == ""
    assert response.pid == server.proc.pid
    assert response.model.backend == "transformers" and response.model.parameters > 0
    assert response.model.has_chat_template


def test_reflection_lists_the_services(server: GrpcWorker) -> None:
    async def services() -> set[str]:
        async with grpc.aio.insecure_channel(server.target) as channel:
            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            request = reflection_pb2.ServerReflectionRequest(list_services="")
            async for response in stub.ServerReflectionInfo(iter([request]), timeout=10):
                return {s.name for s in response.list_services_response.service}
        return set()

    names = run(services())
    assert {"devstral.worker.v1.Worker", "grpc.health.v1.Health"} <= names


def test_generate_streams_over_grpc(server: GrpcWorker) -> None:
    responses = run(collect(server.target, pb.GenerateRequest(prompt="iex>", params=pb.SamplingParams(max_tokens=9))))
    # Tokens after the first may share a message (one per stream interval).
    assert sum(len(r.token_ids) for r in responses) == 9
    assert len(responses[0].token_ids) == 1
    assert responses[-1].finish_reason == pb.FINISH_REASON_LENGTH
    assert responses[-1].usage.completion_tokens == 9
    assert all(r.model.endswith("tiny-elixir") for r in responses)


def test_chat_and_fim_prompts(server: GrpcWorker) -> None:
    chat = pb.GenerateRequest(
        chat=pb.ChatPrompt(messages=[pb.ChatMessage(role="user", content="Write a GenServer")]),
        params=pb.SamplingParams(max_tokens=4),
    )
    fim = pb.GenerateRequest(
        fim=pb.FimPrompt(prefix="def add(a, b) do\n  ", suffix="\nend"), params=pb.SamplingParams(max_tokens=4)
    )
    for request in (chat, fim):
        responses = run(collect(server.target, request))
        assert responses[-1].finish_reason == pb.FINISH_REASON_LENGTH
        assert responses[-1].usage.prompt_tokens > 5


def test_client_cancel_stops_generation(server: GrpcWorker) -> None:
    mark = len(server.log.lines)

    async def cancel_after_first() -> int:
        async with grpc.aio.insecure_channel(server.target) as channel:
            call = worker_pb2_grpc.WorkerStub(channel).Generate(
                pb.GenerateRequest(prompt="defmodule", params=pb.SamplingParams(max_tokens=2000)), timeout=60
            )
            await call.read()
            call.cancel()
            return (await call.code()).value[0]

    assert run(cancel_after_first()) == grpc.StatusCode.CANCELLED.value[0]
    server.log.wait_for(r"generation cancelled after \d+ tokens", timeout=10, start=mark)


def test_errors_map_to_status_codes(server: GrpcWorker) -> None:
    target = server.target
    exc = run(rpc_error(target, "Generate", pb.GenerateRequest(model="missing", prompt="x")))
    assert exc.code() == grpc.StatusCode.NOT_FOUND

    exc = run(rpc_error(target, "Generate", pb.GenerateRequest(prompt="x", params=pb.SamplingParams(max_tokens=-1))))
    assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT and "max_tokens" in exc.details()
    exc = run(rpc_error(target, "Generate", pb.GenerateRequest(prompt="x", params=pb.SamplingParams(temperature=-0.5))))
    assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT and "temperature" in exc.details()

    long_prompt = " ".join(str(i % 10) for i in range(2100))  # each digit is its own token
    exc = run(rpc_error(target, "Generate", pb.GenerateRequest(prompt=long_prompt)))
    assert exc.code() == grpc.StatusCode.OUT_OF_RANGE
    assert exc.details().startswith("prompt has ") and exc.details().endswith("tokens; model context is 2048")

    exc = run(rpc_error(target, "Generate", pb.GenerateRequest(params=pb.SamplingParams(max_tokens=1))))
    assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_fim_request_longer_than_the_context_is_cut_around_its_hole(server: GrpcWorker) -> None:
    """An editor's whole-file FIM request over the context is answered, not refused
    like a plain prompt: the prompt is cut to leave room for max_tokens."""
    digits = " ".join(str(i % 10) for i in range(2100))  # each digit is its own token
    request = pb.GenerateRequest(
        fim=pb.FimPrompt(prefix=digits, suffix=digits), params=pb.SamplingParams(max_tokens=16)
    )
    responses = run(collect(server.target, request))
    usage = responses[-1].usage
    assert responses[-1].finish_reason in (pb.FINISH_REASON_LENGTH, pb.FINISH_REASON_STOP)
    assert 2048 - 16 - 8 <= usage.prompt_tokens <= 2048 - 16
    assert usage.prompt_tokens + usage.completion_tokens <= 2048


def test_activating_an_unknown_adapter_is_not_found(server: GrpcWorker) -> None:
    exc = run(rpc_error(server.target, "ActivateAdapter", pb.ActivateAdapterRequest(adapter="no-such-run/stage9")))
    assert exc.code() == grpc.StatusCode.NOT_FOUND
    assert "no-such-run/stage9" in exc.details()


@pytest.mark.parametrize(
    ("method", "request_message", "field"),
    [
        ("BuildDataset", pb.BuildDatasetRequest(job_id="j"), "out_dir"),
        ("Train", pb.TrainRequest(job_id="j"), "stage"),
        ("Evaluate", pb.EvaluateRequest(job_id="j"), "model"),
    ],
)
def test_job_methods_validate_before_any_work(
    server: GrpcWorker, method: str, request_message: object, field: str
) -> None:
    exc = run(rpc_error(server.target, method, request_message))
    assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in exc.details()


# -- token auth, refusal, lifecycle (no model: these start in a fraction of a second) --


def test_non_loopback_bind_requires_a_token() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "python_worker", "serve", "--host", "0.0.0.0"],
        env=worker_env(MODEL="none"),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert b"WORKER_TOKEN" in result.stderr and b"0.0.0.0" in result.stderr


def test_token_is_checked_when_set() -> None:
    worker = GrpcWorker(["serve", "--host", "0.0.0.0"], worker_env(MODEL="none", WORKER_TOKEN="s3cret"))
    try:

        async def calls() -> tuple[grpc.StatusCode, grpc.StatusCode, str, int]:
            async with grpc.aio.insecure_channel(worker.target) as channel:
                stub = worker_pb2_grpc.WorkerStub(channel)
                try:
                    await stub.Health(pb.HealthRequest(), timeout=10)
                    missing = grpc.StatusCode.OK
                except grpc.aio.AioRpcError as exc:
                    missing = exc.code()
                try:
                    await stub.Health(pb.HealthRequest(), metadata=[("authorization", "Bearer wrong")], timeout=10)
                    wrong = grpc.StatusCode.OK
                except grpc.aio.AioRpcError as exc:
                    wrong = exc.code()
                ok = await stub.Health(pb.HealthRequest(), metadata=[("authorization", "Bearer s3cret")], timeout=10)
                # Health checks stay open for probes that cannot send metadata.
                check = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
                return missing, wrong, ok.state, check.status

        missing, wrong, status, check = run(calls())
        assert missing == grpc.StatusCode.UNAUTHENTICATED
        assert wrong == grpc.StatusCode.UNAUTHENTICATED
        assert status == pb.HealthResponse.READY
        assert check == health_pb2.HealthCheckResponse.SERVING
    finally:
        assert stop(worker.proc) == 0, worker.log.text()


def test_sigterm_stops_the_server_gracefully_and_ports_are_not_shared() -> None:
    worker = GrpcWorker(["serve"], worker_env(MODEL="none"))
    # A second worker on the same port must fail, not quietly share it (SO_REUSEPORT).
    second = subprocess.run(
        [sys.executable, "-m", "python_worker", "serve"],
        env=worker_env(MODEL="none", GRPC_PORT=str(worker.port)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert second.returncode == 1 and "could not bind gRPC" in second.stderr
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.proc.wait(20) == 0, worker.log.text()
    worker.log.wait_for("stopping", timeout=5)


def test_port_mode_also_serves_grpc_from_the_same_process() -> None:
    proc, write_fd, read_fd = spawn_port_worker([], worker_env(MODEL="none"))
    log = LogWatcher(proc)
    try:
        client = PortClient(write_fd, read_fd)
        port = int(log.wait_for(LISTENING, timeout=60).group(1))

        async def grpc_health() -> pb.HealthResponse:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                return await worker_pb2_grpc.WorkerStub(channel).Health(pb.HealthRequest(), timeout=10)

        over_grpc = run(grpc_health())
        call = client.call("Health", pb.HealthRequest(), timeout=20)
        assert call.closing is not None and call.closing.kind == Kind.END
        (over_port,) = call.items(pb.HealthResponse)
        assert over_grpc.pid == over_port.pid == proc.pid
        started = time.monotonic()
        client.close_input()
        assert proc.wait(20) == 0, log.text()
        assert time.monotonic() - started < 20
    finally:
        stop(proc)
