"""The servicer over a fake backend: readiness, model lookup, validation, errors, jobs."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from contextlib import aclosing
from typing import Any

import grpc
import pytest

from python_worker.jobs import JobRegistry
from python_worker.models import ModelManager
from python_worker.proto import worker_pb2 as pb
from python_worker.servicer import WorkerServicer
from python_worker.serving.base import LoadOptions
from python_worker.tests.fakes import FakeBackend
from python_worker.transport.context import PortAbort, PortContext


def make(
    backends: list[FakeBackend] | None = None, default: str | None = "fake-model"
) -> tuple[WorkerServicer, list[FakeBackend]]:
    made: list[FakeBackend] = []
    queue = list(backends or [])

    def factory(name: str) -> FakeBackend:
        backend = queue.pop(0) if queue else FakeBackend()
        made.append(backend)
        return backend

    options = LoadOptions(default) if default else None
    models = ModelManager(options, "transformers", factory=factory)
    return WorkerServicer(models, JobRegistry(), device="cpu"), made


def context() -> PortContext:
    async def write(message: Any) -> None:
        raise AssertionError("unexpected write")

    return PortContext(1, "Test", write)


async def unary(method: Callable[..., Any], request: Any) -> Any:
    return await method(request, context())


async def stream(method: Callable[..., Any], request: Any) -> list[Any]:
    async with aclosing(method(request, context())) as responses:
        return [r async for r in responses]


async def status_of(awaitable: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(PortAbort) as raised:
        await awaitable
    return raised.value.code, raised.value.details


def test_health_is_starting_until_the_default_model_loads() -> None:
    async def scenario() -> None:
        gate = threading.Event()
        servicer, _ = make([FakeBackend(gate=gate)])
        loading = asyncio.create_task(servicer.models.load_default())
        health = await unary(servicer.Health, pb.HealthRequest())
        assert health.state == pb.HealthResponse.STARTING and not health.HasField("model")
        assert health.reason == ""
        assert health.device == "cpu" and health.pid > 0
        code, message = await status_of(stream(servicer.Generate, pb.GenerateRequest(prompt="hi")))
        assert code == grpc.StatusCode.UNAVAILABLE and "loading" in message
        gate.set()
        await loading
        health = await unary(servicer.Health, pb.HealthRequest())
        assert health.state == pb.HealthResponse.READY and health.model.id == "fake-model"

    asyncio.run(scenario())


def test_failed_default_load_is_reported_and_recoverable() -> None:
    async def scenario() -> None:
        servicer, _ = make(default="/missing/model")
        await servicer.models.load_default()
        health = await unary(servicer.Health, pb.HealthRequest())
        assert health.state == pb.HealthResponse.FAILED
        # The reason is the loader's own message, with no "failed: " prefix to parse.
        assert health.reason == "model directory /missing/model does not exist"
        code, message = await status_of(stream(servicer.Generate, pb.GenerateRequest(prompt="hi")))
        assert code == grpc.StatusCode.UNAVAILABLE and health.reason in message
        loaded = await unary(servicer.LoadModel, pb.LoadModelRequest(model="other"))
        assert loaded.model.id == "other"
        health = await unary(servicer.Health, pb.HealthRequest())
        assert health.state == pb.HealthResponse.READY and health.reason == ""

    asyncio.run(scenario())


def test_no_default_model_is_ready_but_generate_needs_a_model() -> None:
    async def scenario() -> None:
        servicer, _ = make(default=None)
        await servicer.models.load_default()
        assert (await unary(servicer.Health, pb.HealthRequest())).state == pb.HealthResponse.READY
        code, message = await status_of(stream(servicer.Generate, pb.GenerateRequest(prompt="hi")))
        assert code == grpc.StatusCode.FAILED_PRECONDITION and "LoadModel" in message

    asyncio.run(scenario())


def test_generate_streams_and_reports_usage() -> None:
    async def scenario() -> None:
        servicer, _ = make()
        await servicer.models.load_default()
        request = pb.GenerateRequest(prompt="hello", params=pb.SamplingParams(max_tokens=5))
        responses = await stream(servicer.Generate, request)
        assert "".join(r.text for r in responses) == "abcab"
        last = responses[-1]
        assert last.finish_reason == pb.FINISH_REASON_LENGTH
        assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) == (5, 5, 10)
        assert all(r.model == "fake-model" for r in responses)

    asyncio.run(scenario())


def test_max_tokens_defaults_and_is_capped_by_the_context() -> None:
    async def scenario() -> None:
        servicer, _ = make([FakeBackend(context=300)])
        await servicer.models.load_default()
        default = await stream(servicer.Generate, pb.GenerateRequest(prompt="x"))
        assert len(default) == 256  # the server default
        capped = await stream(servicer.Generate, pb.GenerateRequest(prompt="x" * 290))
        assert len(capped) == 10 and capped[-1].finish_reason == pb.FINISH_REASON_LENGTH

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("params", "field"),
    [
        (pb.SamplingParams(max_tokens=-1), "max_tokens"),
        (pb.SamplingParams(temperature=-0.1), "temperature"),
        (pb.SamplingParams(temperature=float("nan")), "temperature"),
        (pb.SamplingParams(top_p=-0.5), "top_p"),
        (pb.SamplingParams(top_p=1.01), "top_p"),
        (pb.SamplingParams(top_p=float("nan")), "top_p"),
        # Set to 0 is not "unset": it is refused, not turned into 1.0.
        (pb.SamplingParams(top_p=0.0), "top_p"),
    ],
)
def test_bad_params_are_invalid_argument(params: pb.SamplingParams, field: str) -> None:
    async def scenario() -> tuple[grpc.StatusCode, str]:
        servicer, _ = make()
        await servicer.models.load_default()
        return await status_of(stream(servicer.Generate, pb.GenerateRequest(prompt="x", params=params)))

    code, message = asyncio.run(scenario())
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert f"params.{field}" in message


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (pb.SamplingParams(), 1.0),
        (pb.SamplingParams(temperature=0.7), 1.0),
        (pb.SamplingParams(top_p=0.25), 0.25),
        (pb.SamplingParams(top_p=1.0), 1.0),
    ],
)
def test_top_p_reaches_the_backend_as_given_and_absent_means_one(params: pb.SamplingParams, expected: float) -> None:
    async def scenario() -> list[float]:
        backend = FakeBackend()
        servicer, _ = make([backend])
        await servicer.models.load_default()
        params.max_tokens = 2
        await stream(servicer.Generate, pb.GenerateRequest(prompt="x", params=params))
        return [options.top_p for options in backend.options]

    assert asyncio.run(scenario()) == [expected]


def test_prompt_errors() -> None:
    async def scenario() -> None:
        servicer, _ = make([FakeBackend(context=8)])
        await servicer.models.load_default()
        code, message = await status_of(stream(servicer.Generate, pb.GenerateRequest(prompt="12345678")))
        assert code == grpc.StatusCode.OUT_OF_RANGE
        assert message == "prompt has 8 tokens; model context is 8"
        assert len(await stream(servicer.Generate, pb.GenerateRequest(prompt="1234567"))) == 1
        code, _ = await status_of(stream(servicer.Generate, pb.GenerateRequest(prompt="")))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        code, message = await status_of(stream(servicer.Generate, pb.GenerateRequest()))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "prompt, chat or fim" in message

    asyncio.run(scenario())


def test_models_are_found_by_id_path_or_name_and_reload_closes_when_idle() -> None:
    async def scenario() -> None:
        servicer, made = make(default="/models/tiny")
        await servicer.models.load_default()
        for name in ("/models/tiny", "tiny", ""):
            assert await stream(
                servicer.Generate, pb.GenerateRequest(model=name, prompt="x", params=pb.SamplingParams(max_tokens=1))
            )
        code, message = await status_of(stream(servicer.Generate, pb.GenerateRequest(model="other", prompt="x")))
        assert code == grpc.StatusCode.NOT_FOUND and "/models/tiny" in message

        # A reload while a stream is open: the old weights serve that stream to its end.
        request = pb.GenerateRequest(prompt="x", params=pb.SamplingParams(max_tokens=3))
        async with aclosing(servicer.Generate(request, context())) as open_stream:
            await anext(open_stream)
            await unary(servicer.LoadModel, pb.LoadModelRequest(model="/models/tiny"))
            assert not made[0].closed
            rest = [r async for r in open_stream]
        assert rest[-1].finish_reason == pb.FINISH_REASON_LENGTH
        assert made[0].closed and not made[1].closed
        listed = await unary(servicer.ListModels, pb.ListModelsRequest())
        assert [m.id for m in listed.models] == ["/models/tiny"]

    asyncio.run(scenario())


def test_load_model_validates_its_request() -> None:
    async def scenario() -> None:
        servicer, _ = make(default=None)
        for request, needle in [
            (pb.LoadModelRequest(), "model is required"),
            (pb.LoadModelRequest(model="m", backend="tensorrt"), "unknown backend"),
            (pb.LoadModelRequest(model="m", device="tpu"), "device"),
            (pb.LoadModelRequest(model="m", dtype="int3"), "dtype"),
        ]:
            code, message = await status_of(unary(servicer.LoadModel, request))
            assert code == grpc.StatusCode.INVALID_ARGUMENT and needle in message
        code, _ = await status_of(unary(servicer.LoadModel, pb.LoadModelRequest(model="/missing/x")))
        assert code == grpc.StatusCode.NOT_FOUND

    asyncio.run(scenario())


def test_closing_generate_closes_the_backend_stream() -> None:
    async def scenario() -> FakeBackend:
        servicer, made = make()
        await servicer.models.load_default()
        request = pb.GenerateRequest(prompt="x", params=pb.SamplingParams(max_tokens=100))
        async with aclosing(servicer.Generate(request, context())) as responses:
            await anext(responses)
        return made[0]

    assert asyncio.run(scenario()).cancelled.is_set()


def test_cancel_job_finds_registered_jobs() -> None:
    async def scenario() -> None:
        servicer, _ = make(default=None)
        with servicer.jobs.running("job-1", "train") as job:
            response = await unary(servicer.CancelJob, pb.CancelJobRequest(job_id="job-1"))
            assert response.found and job.cancelled
        response = await unary(servicer.CancelJob, pb.CancelJobRequest(job_id="job-1"))
        assert not response.found

    asyncio.run(scenario())


def test_embed_validates_before_loading_any_model() -> None:
    servicer, _ = make(default=None)
    code, message = asyncio.run(status_of(unary(servicer.Embed, pb.EmbedRequest(model="/no/such/dir"))))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and message.startswith("texts:")
