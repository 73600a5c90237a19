"""The Worker servicer: a thin layer from the contract to plain functions.

The same object serves gRPC (grpc.aio) and the Erlang port (transport/port.py),
so a method may use only the context subset both provide: abort, set_code,
set_details, cancelled, done, add_done_callback, invocation_metadata, write.

Plain functions raise WorkerError; the `unary`/`streaming` wrappers turn it into
`context.abort(code, message)`. Methods whose capability isn't built yet answer
UNIMPLEMENTED; each says where it will be wired in ("Wiring point").
"""

from __future__ import annotations

import functools
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import aclosing
from typing import Any, TypeVar

from python_worker import __version__, generation, serving
from python_worker.errors import WorkerError, unimplemented
from python_worker.jobs import JobRegistry
from python_worker.models import ModelManager, Status
from python_worker.proto import worker_pb2 as pb
from python_worker.proto import worker_pb2_grpc
from python_worker.rag import memory
from python_worker.rag.embedder import Embedders
from python_worker.rag.embedder import embed as embed_texts
from python_worker.rag.store import MemoryStore
from python_worker.serving.adapters import AdapterRecord, Adapters, AdapterState, SmokeResult
from python_worker.serving.base import LoadOptions, ModelInfo
from python_worker.threads import iterate_in_thread, run_in_thread

Request = TypeVar("Request")
Response = TypeVar("Response")


def unary(
    method: Callable[[Any, Request, Any], Awaitable[Response]],
) -> Callable[[Any, Request, Any], Awaitable[Response]]:
    @functools.wraps(method)
    async def handler(self: Any, request: Request, context: Any) -> Response:
        try:
            return await method(self, request, context)
        except WorkerError as exc:
            await context.abort(exc.code, exc.message)
            raise  # abort raises; this only satisfies the type checker

    return handler


def streaming(
    method: Callable[[Any, Request, Any], AsyncIterator[Response]],
) -> Callable[[Any, Request, Any], AsyncIterator[Response]]:
    @functools.wraps(method)
    async def handler(self: Any, request: Request, context: Any) -> AsyncIterator[Response]:
        try:
            # aclosing: when the call is cancelled, the inner generators' finally
            # blocks (which stop the compute) run now, not whenever GC gets to them.
            async with aclosing(method(self, request, context)) as stream:
                async for message in stream:
                    yield message
        except WorkerError as exc:
            await context.abort(exc.code, exc.message)

    return handler


_HEALTH_STATES = {
    Status.STARTING: pb.HealthResponse.STARTING,
    Status.READY: pb.HealthResponse.READY,
    Status.FAILED: pb.HealthResponse.FAILED,
}


def model_info_proto(info: ModelInfo, adapters: AdapterState | None = None) -> pb.ModelInfo:
    message = pb.ModelInfo(
        id=info.id,
        path=info.path,
        backend=info.backend,
        device=info.device,
        dtype=info.dtype,
        context_length=info.context_length,
        parameters=info.parameters,
        has_chat_template=info.has_chat_template,
        active_adapter=(adapters.active if adapters and adapters.active else info.active_adapter),
        loaded_adapters=sorted(adapters.loaded) if adapters else [],
    )
    if info.fim is not None:
        message.fim.CopyFrom(pb.FimTokens(prefix=info.fim.prefix, suffix=info.fim.suffix, middle=info.fim.middle))
    return message


def smoke_proto(result: SmokeResult) -> pb.SmokeTest:
    return pb.SmokeTest(
        generated=result.generated,
        parsed=result.parsed,
        prompts=result.prompts,
        require_parse=result.require_parse,
        note=result.note,
    )


def adapter_proto(record: AdapterRecord, state: AdapterState | None, smoke: SmokeResult | None) -> pb.AdapterInfo:
    message = pb.AdapterInfo(
        name=record.name,
        path=str(record.path),
        base_model=record.base_model,
        stage=record.stage,
        run=record.run,
        rank=record.rank,
        created_at=record.created_at,
        metrics_json=record.metrics_json,
        promoted=record.promoted,
        gate_json=record.gate_json,
        loaded=bool(state and record.name in state.loaded),
        active=bool(state and record.name == state.active),
        previous=bool(state and state.active != "" and record.name == state.previous),
    )
    if record.gate_passed is not None:
        message.gate_passed = record.gate_passed
    if smoke is not None:
        message.smoke_test.CopyFrom(smoke_proto(smoke))
    return message


class WorkerServicer(worker_pb2_grpc.WorkerServicer):
    def __init__(
        self,
        models: ModelManager,
        jobs: JobRegistry,
        *,
        device: str = "auto",
        dtype: str = "auto",
        adapters: Adapters | None = None,
        memory: MemoryStore | None = None,
        embedders: Embedders | None = None,
    ) -> None:
        self.models = models
        self.adapters = adapters
        self.jobs = jobs
        self.device = device  # the configured device, reported until a model is loaded
        self.dtype = dtype
        self.started = time.monotonic()
        self.backends = serving.available()
        # Loads nothing until the first Embed; shared with the memory store's vectoriser.
        self.embedders = embedders or Embedders(device)
        self.memory = memory  # opens nothing until the first memory call

    # -- health and models ------------------------------------------------------

    @unary
    async def Health(self, request: pb.HealthRequest, context: Any) -> pb.HealthResponse:
        current = self.models.current()
        response = pb.HealthResponse(
            state=_HEALTH_STATES[self.models.status],
            reason=self.models.failure,
            version=__version__,
            uptime_ms=int((time.monotonic() - self.started) * 1000),
            backends=self.backends,
            device=current.device if current else self.device,
            pid=os.getpid(),
        )
        if current is not None:
            response.model.CopyFrom(model_info_proto(current, self.models.adapter_state(current.id)))
        return response

    @unary
    async def LoadModel(self, request: pb.LoadModelRequest, context: Any) -> pb.LoadModelResponse:
        options = LoadOptions(
            model=request.model,
            device=request.device or self.device,
            dtype=request.dtype or self.dtype,
            adapter=request.adapter,
        )
        info = await self.models.load(options, request.backend)
        return pb.LoadModelResponse(model=model_info_proto(info, self.models.adapter_state(info.id)))

    @unary
    async def ListModels(self, request: pb.ListModelsRequest, context: Any) -> pb.ListModelsResponse:
        return pb.ListModelsResponse(
            models=[model_info_proto(info, self.models.adapter_state(info.id)) for info in self.models.list()]
        )

    # -- generation -------------------------------------------------------------

    @streaming
    async def Generate(self, request: pb.GenerateRequest, context: Any) -> AsyncIterator[pb.GenerateResponse]:
        arrival_ns = time.monotonic_ns()
        async with aclosing(generation.generate(self.models, request, arrival_ns, memory=self.memory)) as responses:
            async for response in responses:
                yield response

    # -- embeddings (rag/embedder.py) -------------------------------------------

    @unary
    async def Embed(self, request: pb.EmbedRequest, context: Any) -> pb.EmbedResponse:
        # The first call loads the checkpoint (seconds); all of it stays off the loop.
        return await run_in_thread(embed_texts, self.embedders, request)

    # -- memory (rag/store.py, rag/memory.py, rag/ingest.py) ---------------------

    def _memory(self) -> MemoryStore:
        if self.memory is None:
            raise unimplemented("this worker was started without a memory store (no DATA_DIR)")
        return self.memory

    @unary
    async def UpsertDocuments(self, request: pb.UpsertDocumentsRequest, context: Any) -> pb.UpsertDocumentsResponse:
        return await run_in_thread(memory.upsert_documents, self._memory(), request)

    @unary
    async def SearchMemory(self, request: pb.SearchMemoryRequest, context: Any) -> pb.SearchMemoryResponse:
        return await run_in_thread(memory.search_memory, self._memory(), request)

    @unary
    async def DeleteDocuments(self, request: pb.DeleteDocumentsRequest, context: Any) -> pb.DeleteDocumentsResponse:
        return await run_in_thread(memory.delete_documents, self._memory(), request)

    @unary
    async def MemoryStats(self, request: pb.MemoryStatsRequest, context: Any) -> pb.MemoryStatsResponse:
        return await run_in_thread(memory.memory_stats, self._memory())

    @streaming
    async def Ingest(self, request: pb.IngestRequest, context: Any) -> AsyncIterator[pb.JobEvent]:
        from python_worker.rag.ingest import ingest_events

        store = self._memory()
        async for event in self._job(
            request.job_id, "ingest", lambda req, cancel: ingest_events(store, req, cancel), request
        ):
            yield event

    # -- jobs -------------------------------------------------------------------

    @unary
    async def CancelJob(self, request: pb.CancelJobRequest, context: Any) -> pb.CancelJobResponse:
        return pb.CancelJobResponse(found=self.jobs.cancel(request.job_id))

    # -- not built yet ----------------------------------------------------------
    # Each answers UNIMPLEMENTED until its capability lands. To wire one, replace
    # the body with a call into the capability's plain function (an async
    # generator for the streaming ones) and register jobs with
    # `with self.jobs.running(request.job_id, kind) as job:` so CancelJob works.

    # -- jobs: dataset building, training, evaluation ---------------------------
    # Each job module offers `*_events(request, cancel_event)`: it validates the
    # request eagerly (raising InvalidRequest, a WorkerError, before any work)
    # and returns a blocking iterator of JobEvents. The modules are imported on
    # first use so the worker starts without loading trl/peft/datasketch.

    @streaming
    async def BuildDataset(self, request: pb.BuildDatasetRequest, context: Any) -> AsyncIterator[pb.JobEvent]:
        from python_worker.dataset.rpc import build_dataset_events

        async for event in self._job(request.job_id, "build_dataset", build_dataset_events, request):
            yield event

    @streaming
    async def Train(self, request: pb.TrainRequest, context: Any) -> AsyncIterator[pb.JobEvent]:
        from python_worker.training.rpc import train_events

        async for event in self._job(request.job_id, "train", train_events, request):
            yield event

    @streaming
    async def Evaluate(self, request: pb.EvaluateRequest, context: Any) -> AsyncIterator[pb.JobEvent]:
        from python_worker.training.rpc import evaluate_events

        async for event in self._job(request.job_id, "evaluate", evaluate_events, request):
            yield event

    async def _job(
        self,
        job_id: str,
        kind: str,
        start: Callable[[Any, threading.Event], Iterator[pb.JobEvent]],
        request: Any,
    ) -> AsyncIterator[pb.JobEvent]:
        """Run one job under the registry (so CancelJob reaches it), off the event loop."""
        if not job_id:
            # The events carry the request's job id, so the generated one goes there too.
            job_id = request.job_id = f"{kind}-{uuid.uuid4().hex[:12]}"
        with self.jobs.running(job_id, kind) as job:
            # Validation reads manifests and configs: keep that off the loop too.
            events = await run_in_thread(start, request, job.cancel_event)
            async for event in iterate_in_thread(events, name=kind):
                yield event

    # -- adapters (serving/adapters.py) -----------------------------------------

    def _adapters(self) -> Adapters:
        if self.adapters is None:
            raise unimplemented("this worker was started without an adapter registry (no DATA_DIR)")
        return self.adapters

    @unary
    async def ListAdapters(self, request: pb.ListAdaptersRequest, context: Any) -> pb.ListAdaptersResponse:
        adapters = self._adapters()
        records, state, base = await run_in_thread(adapters.listing, request.root)
        return pb.ListAdaptersResponse(
            adapters=[adapter_proto(r, state, adapters.smoke_result(r.name)) for r in records],
            active=state.active if state else "",
            previous=state.previous if state else "",
            base_model=base.id if base else "",
        )

    @unary
    async def ActivateAdapter(self, request: pb.ActivateAdapterRequest, context: Any) -> pb.ActivateAdapterResponse:
        state, smoke = await self._adapters().activate(request.adapter)
        return self._activation(state, smoke)

    @unary
    async def RollbackAdapter(self, request: pb.RollbackAdapterRequest, context: Any) -> pb.ActivateAdapterResponse:
        return self._activation(await self._adapters().rollback(), None)

    def _activation(self, state: AdapterState, smoke: SmokeResult | None) -> pb.ActivateAdapterResponse:
        current = self.models.current()
        response = pb.ActivateAdapterResponse(active=state.active, previous=state.previous)
        if current is not None:
            response.model.CopyFrom(model_info_proto(current, state))
        if smoke is not None:
            response.smoke_test.CopyFrom(smoke_proto(smoke))
        return response
