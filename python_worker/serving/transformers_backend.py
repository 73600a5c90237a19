"""The transformers backend: any causal LM that loads with from_pretrained, on CPU or CUDA.

Generation is our own incremental decoding rather than model.generate(): one
scheduler thread (serving/batching.py) runs every request's forward passes as
one batch, so we can stream each token as it is produced, drop a cancelled
request between tokens and cut at stop sequences. Greedy decoding gives exactly
model.generate(do_sample=False)'s tokens, alone or batched (tested).

The scheduler is a thread (torch releases the GIL in its kernels), so the event
loop keeps serving other calls while generations run.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, ClassVar

from python_worker import config
from python_worker.errors import failed_precondition, invalid_argument, not_found
from python_worker.serving import prompts
from python_worker.serving.base import (
    Delta,
    LoadOptions,
    ModelInfo,
    Prompt,
    SamplingOptions,
)
from python_worker.serving.batching import BatchEngine

log = logging.getLogger(__name__)

# At most one streamed delta per 20 ms per stream (50 updates a second, smooth
# to a reader): on a small model that decodes hundreds of tokens a second, one
# frame and one SSE event per token would spend a tenth of the CPU on
# transport. 0 sends every token as soon as the consumer can take it.
STREAM_INTERVAL_S = 0.02
# And at most about this many deltas a second over all streams together: every
# delta costs a Port frame, a host message, an SSE write and a client read, on
# the cores that decode. Past 8 streams each one's interval grows instead
# (20 streams: one delta per 50 ms each). bench/concurrent_streams.py measured
# 20 streams at about 1,500 tokens/s with 1,000 deltas/s, 1,650-2,000 with 400.
MAX_DELTAS_PER_S = 400


def resolve_device(requested: str) -> str:
    """ "auto" means the first CUDA device when there is one, else the CPU."""
    import torch

    if requested == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise failed_precondition(f"device {requested} requested but CUDA is not available")
        index = int(requested.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise failed_precondition(
                f"device {requested} requested but only {torch.cuda.device_count()} CUDA device(s) exist"
            )
        return f"cuda:{index}"
    if requested == "mps" and not torch.backends.mps.is_available():
        raise failed_precondition("device mps requested but MPS is not available")
    return requested


def resolve_dtype(requested: str, device: str) -> Any:
    """ "auto": bf16 where the GPU supports it (half the memory, same range as fp32),
    fp32 on the CPU where bf16 matmuls are slow."""
    import torch

    if requested == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[requested]


def context_length(config: Any, tokenizer: Any) -> int:
    for name in ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    # Tokenizers without a limit report a huge sentinel (int(1e30)).
    limit = getattr(tokenizer, "model_max_length", 0)
    return limit if 0 < limit < 10**7 else 2048


class TransformersBackend:
    name: ClassVar[str] = "transformers"

    def __init__(
        self,
        stream_interval: float = STREAM_INTERVAL_S,
        *,
        max_batch_size: int | None = None,
        max_waiting: int | None = None,
    ) -> None:
        self.stream_interval = stream_interval
        # Unset limits come from MAX_BATCH_SIZE / MAX_WAITING_REQUESTS (config.py).
        env_batch, env_waiting = config.batch_limits(os.environ)
        self.max_batch_size = max_batch_size if max_batch_size is not None else env_batch
        self.max_waiting = max_waiting if max_waiting is not None else env_waiting
        self._engine: BatchEngine | None = None
        self._info: ModelInfo | None = None
        self.model: Any = None
        self.tokenizer: Any = None
        self._eos: frozenset[int] = frozenset()
        # Adapters (serving/adapters.py): once one is loaded, `peft` wraps the
        # model and every forward names its adapter ("__base__" = none) via
        # peft's adapter_names. peft applies that through hooks registered on
        # the shared modules for the duration of a forward, so forwards and
        # adapter loads hold this lock: concurrent streams would otherwise see
        # each other's adapter.
        self.peft: Any = None
        self.adapter_lock = threading.Lock()

    @property
    def info(self) -> ModelInfo:
        if self._info is None:
            raise RuntimeError("TransformersBackend used before load()")
        return self._info

    # -- loading ----------------------------------------------------------------

    def load(self, options: LoadOptions) -> ModelInfo:
        import transformers
        from transformers import AutoModelForCausalLM, AutoTokenizer

        transformers.utils.logging.disable_progress_bar()  # progress bars would flood the log
        if _looks_like_path(options.model) and not Path(options.model).expanduser().exists():
            raise not_found(f"model directory {options.model} does not exist")
        device = resolve_device(options.device)
        dtype = resolve_dtype(options.dtype, device)
        path = str(Path(options.model).expanduser()) if _looks_like_path(options.model) else options.model
        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
            model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, device_map=device)
        except (OSError, ValueError) as exc:
            raise failed_precondition(f"could not load model {options.model}: {exc}") from exc
        if options.adapter:
            model = _apply_adapter(model, options.adapter)
        model.eval()

        eos = set(_as_list(getattr(model.generation_config, "eos_token_id", None)))
        eos.update(_as_list(tokenizer.eos_token_id))
        self.model, self.tokenizer, self._eos = model, tokenizer, frozenset(eos)
        self._engine = BatchEngine(
            model,
            tokenizer,
            self._eos,
            device,
            max_batch_size=self.max_batch_size,
            max_waiting=self.max_waiting,
            forward_lock=self.adapter_lock,
            # PeftModel.from_pretrained names the adapter it applies "default".
            default_adapter="default" if options.adapter else None,
        )
        self._info = ModelInfo(
            id=options.model,
            path=path,
            backend=self.name,
            device=device,
            dtype=str(dtype).removeprefix("torch."),
            context_length=context_length(model.config, tokenizer),
            parameters=sum(p.numel() for p in model.parameters()),
            fim=prompts.detect_fim(tokenizer),
            has_chat_template=prompts.has_chat_template(tokenizer),
            active_adapter=options.adapter,
        )
        log.info(
            "loaded %s on %s (%s, %d parameters, context %d)",
            path,
            device,
            self._info.dtype,
            self._info.parameters,
            self._info.context_length,
        )
        return self._info

    @property
    def engine(self) -> BatchEngine:
        """The batch scheduler (only valid after load)."""
        if self._engine is None:
            raise RuntimeError("TransformersBackend used before load()")
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None
        self.model = None
        self.tokenizer = None
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:  # pragma: no cover - torch is a hard dependency
            pass

    # -- generation -------------------------------------------------------------

    def encode(self, prompt: Prompt, fim_limit: int | None = None) -> list[int]:
        return prompts.encode(self.tokenizer, prompt, self.info.fim, self.info.id, fim_limit)

    async def generate(
        self, prompt_ids: list[int], options: SamplingOptions, *, adapter: str | None = None
    ) -> AsyncIterator[Delta]:
        if options.max_tokens < 1:
            raise invalid_argument("max_tokens must be at least 1")
        if self._engine is None:
            raise failed_precondition("the model is not loaded")
        loop = asyncio.get_running_loop()
        engine = self._engine
        ready = DeltaBuffer(self.stream_interval, lambda: engine.generating() / MAX_DELTAS_PER_S)
        woken = asyncio.Event()
        failure: list[BaseException] = []

        def wake(_: Any) -> bool:
            try:
                loop.call_soon_threadsafe(woken.set)
                return True
            except RuntimeError:  # the loop is closed: nobody is listening any more
                return False

        def on_error(exc: BaseException) -> None:
            failure.append(exc)
            wake(None)

        # The scheduler thread calls these; submit raises RESOURCE_EXHAUSTED when
        # too many requests wait, or NOT_FOUND for an adapter that is not loaded.
        request = self._engine.submit(prompt_ids, options, adapter, lambda d: ready.put(d, wake), on_error)
        try:
            while True:
                delta = ready.take()
                if delta is not None:
                    yield delta
                    if delta.finish_reason is not None:
                        return
                    continue
                if failure:
                    raise failure[0]
                await woken.wait()
                woken.clear()
        finally:
            # Finished, failed, cancelled or abandoned: the row leaves the batch
            # before the next step (or the queue at once).
            self._engine.cancel(request)


class DeltaBuffer:
    """Deltas from the decode thread, merged until the event loop takes them.

    Every delta sent downstream costs a frame, a host message, an SSE event and
    a client parse, all competing with decoding for the CPU. So tokens that are
    ready together go out as one delta, and the consumer is woken at most once
    per `interval` seconds: faster tokens wait (at most the interval plus one
    token) and join the next delta, like vLLM's stream interval; `shared_interval`
    stretches that interval when many streams share one budget of deltas a
    second (MAX_DELTAS_PER_S). Deltas up to the
    first text and the last (the one with a finish reason) wake it at once, so
    neither the time to first token nor the end of a generation waits.
    """

    def __init__(self, interval: float = 0.0, shared_interval: Callable[[], float] | None = None) -> None:
        self._interval = interval
        # The interval the shared delta budget asks for now (grows with the streams).
        self._shared_interval = shared_interval
        self._lock = threading.Lock()
        self._pending: list[Delta] = []
        self._woken = False  # a wake is on its way and no take has happened since
        self._next_wake = 0.0

    def put(self, delta: Delta, wake: Callable[[Any], bool]) -> bool:
        """Add a delta (decode thread); wakes the consumer when a delta is due."""
        with self._lock:
            self._pending.append(delta)
            now = time.monotonic()
            due = not self._woken and (delta.finish_reason is not None or now >= self._next_wake)
            if due:
                self._woken = True
                # The interval starts with the first text a reader sees: a first
                # token whose text is held back must not delay the second.
                if any(d.text for d in self._pending):
                    self._next_wake = now + self._current_interval()
        return wake(None) if due else True

    def _current_interval(self) -> float:
        if self._interval <= 0 or self._shared_interval is None:
            return self._interval  # 0 means every token at once, whatever the load
        return max(self._interval, self._shared_interval())

    def take(self) -> Delta | None:
        """Everything put since the last take, as one delta (None when empty)."""
        with self._lock:
            pending, self._pending = self._pending, []
            self._woken = False
        if not pending:
            return None
        if len(pending) == 1:
            return pending[0]
        return Delta(
            "".join(d.text for d in pending),
            tuple(t for d in pending for t in d.token_ids),
            pending[-1].finish_reason,  # only the last delta of a generation has one
        )


def _looks_like_path(model: str) -> bool:
    return model.startswith(("/", "./", "../", "~")) or Path(model).exists()


def _as_list(value: Any) -> list[int]:
    if value is None:
        return []
    if isinstance(value, int):
        return [value]
    return [int(v) for v in value]


def _apply_adapter(model: Any, adapter: str) -> Any:
    if not Path(adapter).expanduser().is_dir():
        raise not_found(f"adapter directory {adapter} does not exist")
    try:
        from peft import PeftModel
    except ImportError as exc:  # pragma: no cover - peft is in requirements.txt
        raise failed_precondition("peft is not installed; it is needed to apply adapters") from exc
    try:
        return PeftModel.from_pretrained(model, str(Path(adapter).expanduser()))
    except (OSError, ValueError) as exc:
        raise failed_precondition(f"could not apply adapter {adapter}: {exc}") from exc
