"""Process lifecycle: build the one servicer, serve it over gRPC and/or the port, stop cleanly.

Startup order matters: the transports start first and the default model loads in
the background, so Health answers "starting" at once instead of after the
seconds (or minutes) that importing torch and loading weights take.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import stat
from typing import IO

from python_worker import serving
from python_worker.config import Config
from python_worker.jobs import JobRegistry
from python_worker.models import BackendFactory, ModelManager, Status
from python_worker.rag import memory, store
from python_worker.rag.embedder import Embedders
from python_worker.servicer import WorkerServicer
from python_worker.serving.adapters import Adapters
from python_worker.serving.base import LoadOptions
from python_worker.transport.grpc_server import BindError, GrpcServer
from python_worker.transport.port import PortTransport

log = logging.getLogger(__name__)

# Seconds in-flight gRPC calls get to finish on SIGTERM before they are cancelled.
SHUTDOWN_GRACE = 5.0


class Worker:
    """Everything one worker process serves, shared by both transports."""

    def __init__(self, config: Config, *, factory: BackendFactory = serving.create) -> None:
        self.config = config
        self.jobs = JobRegistry()
        default = LoadOptions(config.model, config.device, config.dtype) if config.model else None
        self.models = ModelManager(default, config.backend, factory=factory, on_status=self._on_status)
        self.adapters = Adapters(config.data_dir / "adapters", self.models.current_with_adapters)
        embedders = Embedders(config.device)
        # Opened on the first memory call, closed in close(): the embedded store admits one process.
        self.memory = store.from_config(config, memory.default_vectoriser(embedders))
        self.servicer = WorkerServicer(
            self.models,
            self.jobs,
            device=config.device,
            dtype=config.dtype,
            adapters=self.adapters,
            memory=self.memory,
            embedders=embedders,
        )
        self.grpc: GrpcServer | None = None
        self._loading: asyncio.Task[None] | None = None

    async def _on_status(self, status: Status, failure: str) -> None:
        log.info("worker status: %s%s", status.value, f" ({failure})" if failure else "")
        if self.grpc is not None:
            await self.grpc.set_ready(status is Status.READY)

    def start_loading(self) -> None:
        # The recorded active adapter is loaded again before the worker reports
        # ready, so a restarted (or killed and respawned) worker serves it at once.
        self._loading = asyncio.create_task(
            self.models.load_default(before_ready=self.adapters.restore), name="load-default-model"
        )

    async def start_grpc(self) -> int:
        self.grpc = GrpcServer(
            self.servicer, host=self.config.grpc_host, port=self.config.grpc_port, token=self.config.worker_token
        )
        return await self.grpc.start(ready=self.models.ready)

    async def close(self, grace: float = SHUTDOWN_GRACE) -> None:
        self.jobs.cancel_all()
        if self.grpc is not None:
            await self.grpc.stop(grace)
        if self._loading is not None and not self._loading.done():
            self._loading.cancel()  # the load thread is a daemon; it dies with the process
            with contextlib.suppress(asyncio.CancelledError):
                await self._loading
        await self.models.close()
        self.memory.close()


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def serve(config: Config) -> int:
    """`python -m python_worker serve`: gRPC until SIGTERM/SIGINT."""
    stop = _stop_on_signals()
    worker = Worker(config)
    try:
        await worker.start_grpc()
    except BindError as exc:
        log.error("%s", exc)
        await worker.close()
        return 1
    worker.start_loading()
    await stop.wait()
    log.info("stopping (grace %.0fs)", SHUTDOWN_GRACE)
    await worker.close()
    return 0


def open_port_fds(in_fd: int = 3, out_fd: int = 4) -> tuple[IO[bytes], IO[bytes]]:
    """The port's frame streams. Call before the event loop exists: without a port
    on 3/4, those numbers would soon belong to the loop's own descriptors."""
    for fd, role in ((in_fd, "input"), (out_fd, "output")):
        try:
            mode = os.fstat(fd).st_mode
        except OSError:
            raise PortSetupError(
                f"fd {fd} (port {role}) is not open: run me as an Erlang port with :nouse_stdio"
            ) from None
        if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)):
            raise PortSetupError(f"fd {fd} (port {role}) must be a pipe or socket")
    return os.fdopen(in_fd, "rb", buffering=0), os.fdopen(out_fd, "wb", buffering=0)


class PortSetupError(RuntimeError):
    """fds 3/4 are not usable as a port."""


async def port(config: Config, reader: IO[bytes], writer: IO[bytes], *, with_grpc: bool) -> int:
    """`python -m python_worker port`: frames on reader/writer (plus gRPC) until EOF or a signal."""
    stop = _stop_on_signals()
    worker = Worker(config)
    transport = PortTransport(worker.servicer, reader, writer, max_frame_bytes=config.max_frame_bytes)
    serving = asyncio.create_task(transport.serve(), name="port")
    stopping = asyncio.create_task(stop.wait(), name="signals")
    code = 0
    try:
        if with_grpc:
            await worker.start_grpc()
        worker.start_loading()
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if serving.done() and serving.exception() is not None:
            log.error("port transport failed", exc_info=serving.exception())
            code = 1
    except BindError as exc:
        log.error("%s", exc)
        code = 1
    finally:
        for task in (stopping, serving):
            task.cancel()
        await asyncio.gather(stopping, serving, return_exceptions=True)
        await transport.close()
        await worker.close()
    return code
