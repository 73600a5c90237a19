"""The loaded models: loading (off the event loop), lookup by id, readiness.

The worker starts "starting" and loads the default model in the background, so
Health answers at once; it becomes "ready" when a model is loaded (or when
there is no default model), and "failed", with the reason in `failure`, if the
default load fails (a later LoadModel can still make it ready).

A model replaced by a reload is closed only once no generation uses it, so
in-flight streams finish on the weights they started with.

Adapters (serving/adapters.py) live on a base model's entry: a request for the
model id "<base>:<adapter>" runs on that adapter, and one for the base id on
the active adapter, resolved once when the request starts.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import grpc

from python_worker import config, serving
from python_worker.errors import (
    WorkerError,
    failed_precondition,
    invalid_argument,
    not_found,
    unavailable,
)
from python_worker.serving.adapters import AdapterState
from python_worker.serving.base import Backend, LoadOptions, ModelInfo, Prompt, SamplingOptions
from python_worker.threads import run_in_thread

log = logging.getLogger(__name__)


class Status(enum.Enum):
    """Readiness; the servicer maps it onto HealthResponse.Status."""

    STARTING = "starting"
    READY = "ready"
    FAILED = "failed"


@dataclass
class _Entry:
    backend: Backend
    users: int = 0
    retired: bool = False
    adapters: AdapterState = field(default_factory=AdapterState)


class AdapterBound:
    """A backend as seen by one request for an adapter: generate runs on it."""

    def __init__(self, backend: Backend, adapter: str, model_id: str) -> None:
        self.backend = backend
        self.adapter = adapter
        self.name = backend.name
        self.info = replace(backend.info, id=model_id, active_adapter=adapter)

    def encode(self, prompt: Prompt, fim_limit: int | None = None) -> list[int]:
        return self.backend.encode(prompt, fim_limit)

    def generate(self, prompt_ids: list[int], options: SamplingOptions) -> AsyncIterator[Any]:
        generate: Any = self.backend.generate  # the adapter keyword: transformers backend only
        return generate(prompt_ids, options, adapter=self.adapter)


# Called with the new status and, with FAILED, the reason ("" otherwise).
StatusListener = Callable[[Status, str], Awaitable[None]]
BackendFactory = Callable[[str], Backend]


class ModelManager:
    def __init__(
        self,
        default: LoadOptions | None,
        default_backend: str = "transformers",
        *,
        factory: BackendFactory = serving.create,
        on_status: StatusListener | None = None,
    ) -> None:
        self._default_options = default
        self._default_backend = default_backend
        self._factory = factory
        self._on_status = on_status
        self._entries: dict[str, _Entry] = {}
        self._current: str | None = None  # the id an empty `model` field means
        self._lock = asyncio.Lock()
        self._loads: set[asyncio.Task[ModelInfo]] = set()
        self.status = Status.STARTING if default is not None else Status.READY
        # Why the default model could not be loaded, while the status is FAILED.
        self.failure = ""

    # -- state ------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self.status is Status.READY

    def current(self) -> ModelInfo | None:
        return self._entries[self._current].backend.info if self._current else None

    def list(self) -> list[ModelInfo]:
        return [entry.backend.info for entry in self._entries.values()]

    def adapter_state(self, model_id: str) -> AdapterState:
        """The adapters of a loaded model (empty for an unknown id)."""
        entry = self._entries.get(model_id)
        return entry.adapters if entry is not None else AdapterState()

    def current_with_adapters(self) -> tuple[Backend, AdapterState]:
        """The current model's backend and adapter state (for serving/adapters.py)."""
        entry = self._resolve("")
        return entry.backend, entry.adapters

    async def _set_status(self, status: Status, failure: str = "") -> None:
        self.status = status
        self.failure = failure
        if self._on_status is not None:
            await self._on_status(status, failure)

    # -- loading ----------------------------------------------------------------

    async def load_default(self, before_ready: Callable[[], Awaitable[None]] | None = None) -> None:
        """Load the configured default model; the startup task runs this.
        `before_ready` (restoring the active adapter) runs before the worker reports ready."""
        if self._default_options is None:
            await self._set_status(Status.READY)
            return
        try:
            await self.load(self._default_options, self._default_backend, announce=before_ready is None)
            if before_ready is not None:
                try:
                    await before_ready()
                except Exception:
                    log.exception("preparing the default model failed; serving it as loaded")
                await self._set_status(Status.READY)
        except WorkerError as exc:
            log.error("loading the default model %s failed: %s", self._default_options.model, exc.message)
            await self._set_status(Status.FAILED, exc.message)
        except Exception as exc:
            log.exception("loading the default model %s failed", self._default_options.model)
            await self._set_status(Status.FAILED, str(exc) or type(exc).__name__)

    async def load(self, options: LoadOptions, backend_name: str = "", *, announce: bool = True) -> ModelInfo:
        """Load (or reload) a model and make it the current one; `announce` reports ready."""
        if not options.model:
            raise invalid_argument("model is required")
        if not config.DEVICE_PATTERN.match(options.device):
            raise invalid_argument(f"device must be auto, cpu, cuda, cuda:N or mps, got {options.device!r}")
        if options.dtype not in config.DTYPES:
            raise invalid_argument(f"dtype must be one of {', '.join(config.DTYPES)}, got {options.dtype!r}")
        name = backend_name or self._default_backend
        if name not in serving.REGISTRY:
            raise invalid_argument(f"unknown backend {name!r}; expected one of {sorted(serving.REGISTRY)}")
        # Shielded: a caller that gives up (cancels) must not leave a half-registered
        # model, and the weights are loading anyway. close() reaps what is left.
        task = asyncio.ensure_future(self._load_locked(options, name, announce))
        self._loads.add(task)
        task.add_done_callback(self._loads.discard)
        return await asyncio.shield(task)

    async def _load_locked(self, options: LoadOptions, name: str, announce: bool = True) -> ModelInfo:
        async with self._lock:
            backend = self._factory(name)
            try:
                info = await run_in_thread(backend.load, options)
            except WorkerError:
                raise
            except Exception as exc:
                log.exception("loading %s with %s failed", options.model, name)
                raise WorkerError(grpc.StatusCode.INTERNAL, f"loading {options.model} failed: {exc}") from exc
            old = self._entries.get(info.id)
            self._entries[info.id] = _Entry(backend)
            self._current = info.id
            if old is not None:
                self._retire(old)
        if announce and not self.ready:
            await self._set_status(Status.READY)
        return info

    def _retire(self, entry: _Entry) -> None:
        entry.retired = True
        if entry.users == 0:
            entry.backend.close()

    async def close(self) -> None:
        # A load still running has its weights half in memory; its daemon thread
        # dies with the process, its task goes now.
        for task in list(self._loads):
            task.cancel()
        await asyncio.gather(*self._loads, return_exceptions=True)
        for entry in list(self._entries.values()):
            self._retire(entry)
        self._entries.clear()
        self._current = None

    # -- lookup -----------------------------------------------------------------

    def _resolve_adapter(self, model: str) -> tuple[_Entry, str]:
        """The entry and adapter ("" = none) a request for `model` runs on."""
        if not model:
            entry = self._resolve(model)
            return entry, entry.adapters.active
        entry = self._entries.get(model)
        if entry is not None:
            return entry, entry.adapters.active
        for entry in self._entries.values():
            info = entry.backend.info
            for prefix in (info.id, info.path, Path(info.path).name):
                if model.startswith(prefix + ":"):
                    adapter = model[len(prefix) + 1 :]
                    if adapter in entry.adapters.loaded:
                        return entry, adapter
                    loaded = ", ".join(f"{info.id}:{a}" for a in sorted(entry.adapters.loaded)) or "none"
                    raise not_found(f"adapter {adapter} of model {info.id} is not loaded (loaded adapters: {loaded})")
        entry = self._resolve(model)
        return entry, entry.adapters.active

    def _resolve(self, model: str) -> _Entry:
        if not model:
            if self._current is None:
                raise self._not_ready() if not self.ready else failed_precondition("no model is loaded; call LoadModel")
            return self._entries[self._current]
        entry = self._entries.get(model)
        if entry is not None:
            return entry
        # Also accept the directory path or its last component ("tiny-elixir").
        matches = [e for e in self._entries.values() if model in (e.backend.info.path, Path(e.backend.info.path).name)]
        if len(matches) == 1:
            return matches[0]
        if self.status is Status.STARTING and self._default_options and model == self._default_options.model:
            raise self._not_ready()
        loaded = ", ".join(sorted(self._entries)) or "none"
        raise not_found(f"model {model} is not loaded (loaded: {loaded})")

    def _not_ready(self) -> WorkerError:
        if self.status is Status.FAILED:
            return unavailable(f"the default model could not be loaded ({self.failure}); call LoadModel")
        return unavailable("the worker is starting: the default model is still loading")

    @asynccontextmanager
    async def use(self, model: str) -> AsyncIterator[Backend]:
        """The backend for `model` ("" = current), kept open while the block runs."""
        entry, adapter = self._resolve_adapter(model)
        entry.users += 1
        try:
            if adapter:
                # A request named by the base id reports the base id; one named
                # by the adapter's id reports that.
                model_id = model if model and model != entry.backend.info.id and ":" in model else entry.backend.info.id
                yield AdapterBound(entry.backend, adapter, model_id)  # type: ignore[misc]
            else:
                yield entry.backend
        finally:
            entry.users -= 1
            if entry.retired and entry.users == 0:
                entry.backend.close()
