"""Continuous batching: one scheduler thread decodes every running request together.

A decode loop per request in its own thread makes concurrent requests fight for
the cores, each paying a whole forward pass per token. Here all running requests
share one forward pass per step over one left-padded KV cache:

- A new request waits in a bounded queue (past the bound: RESOURCE_EXHAUSTED).
- Between steps the scheduler admits waiting requests up to the batch cap and
  prefills them together: one forward over their prompts, left-padded to the
  longest, with an attention mask and each row's own position ids (0 at its
  first real token). A burst of N arrivals thus costs one prefill, not N in a
  row (the last of 20 used to wait for 19 prefills, and so did the running
  streams). The padded cache entries are zeroed, each row's first token is
  sampled, and the rows are appended to the batch's cache, left-padded with
  zeros; the attention mask hides the padding.
- Every step feeds each row its last sampled token at its own position (the
  count of its real tokens), so a row computes what it would compute alone.
- Finished and cancelled rows leave before the next step; cache columns that
  are padding for every remaining row are cut off.

Each request keeps its own sampling options, torch.Generator (seed), stop
sequences, max_tokens and LoRA adapter: on a model with LoRA layers, each row
names its adapter (peft's mixed-adapter batches, `adapter_names`).

transformers' own continuous batching (`model.generate_batch`,
`init_continuous_batching`) was measured at about 170 tokens/s for 20 streams
of the tiny model on this CPU against about 2,300 for a static batch, so this
module does its own, simpler scheduling over a DynamicCache.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc

from python_worker.errors import WorkerError, not_found
from python_worker.serving.base import Delta, FinishReason, SamplingOptions
from python_worker.serving.text_stream import IncrementalDetokenizer, StopMatcher

log = logging.getLogger(__name__)

# peft's name for "no adapter" in a mixed-adapter batch.
BASE_ADAPTER = "__base__"


def resource_exhausted(message: str) -> WorkerError:
    return WorkerError(grpc.StatusCode.RESOURCE_EXHAUSTED, message)


def sample_token(logits: Any, options: SamplingOptions, generator: Any) -> int:
    """Greedy argmax at temperature 0, else temperature + nucleus (top_p) sampling."""
    import torch

    if options.temperature == 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits.float() / options.temperature, dim=-1)
    if options.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        # Keep the smallest prefix whose mass reaches top_p (always the top token).
        keep = (torch.cumsum(sorted_probs, dim=-1) - sorted_probs) < options.top_p
        choice = torch.multinomial(sorted_probs * keep, 1, generator=generator)
        return int(order[choice])
    return int(torch.multinomial(probs, 1, generator=generator))


@dataclass(eq=False)
class Request:
    """One generation: its inputs, where its output goes, and its decode state."""

    prompt_ids: list[int]
    options: SamplingOptions
    adapter: str | None
    on_delta: Callable[[Delta], None]
    on_error: Callable[[BaseException], None]
    cancelled: threading.Event = field(default_factory=threading.Event)
    # Decode state, touched only by the scheduler thread.
    generated: int = 0
    token: int = -1  # the last sampled token, fed at the next step
    detokenizer: Any = None
    stops: Any = None
    generator: Any = None


class BatchEngine:
    """Schedules the requests of one loaded model; `submit` is thread-safe."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        eos: frozenset[int],
        device: str,
        *,
        max_batch_size: int,
        max_waiting: int,
        forward_lock: threading.Lock | None = None,
        default_adapter: str | None = None,
    ) -> None:
        if max_batch_size < 1 or max_waiting < 0:
            raise ValueError(f"max_batch_size must be >= 1 and max_waiting >= 0, got {max_batch_size}, {max_waiting}")
        self.model = model
        self.tokenizer = tokenizer
        self.eos = eos
        self.device = device
        self.max_batch_size = max_batch_size
        self.max_waiting = max_waiting
        # Held around each forward: adapter loads take it too, since the
        # per-row adapter routing lives on modules that a load changes.
        self._forward_lock = forward_lock or threading.Lock()
        # What a request that names no adapter gets: the adapter applied at load
        # (LoadOptions.adapter), else the base model, whatever adapters are
        # loaded beside it later.
        self.default_adapter = default_adapter
        self._lock = threading.Condition()
        self._waiting: collections.deque[Request] = collections.deque()
        self._closed = False
        self._active = 0  # admitted and not yet out of the batch (under _lock)
        self._thread: threading.Thread | None = None
        # Batch state, touched only by the scheduler thread.
        self._rows: list[Request] = []
        self._cache: Any = None
        self._mask: Any = None  # [rows, cache length], 1 = a real token
        self._positions: Any = None  # [rows]: each row's real tokens in the cache
        self.steps = 0  # batched decode steps run (tests and benchmarks read it)
        self.prefills = 0  # batched prefill forwards that added rows (tests read it)
        self.max_rows_seen = 0
        self.cancelled_rows = 0  # rows dropped because their request was cancelled
        self.last_cancelled_after = 0  # tokens the last of them had generated

    # -- public API (any thread) -------------------------------------------------

    def submit(
        self,
        prompt_ids: Sequence[int],
        options: SamplingOptions,
        adapter: str | None,
        on_delta: Callable[[Delta], None],
        on_error: Callable[[BaseException], None],
    ) -> Request:
        """Queue a request; its deltas and any error arrive on the scheduler thread.

        Raises RESOURCE_EXHAUSTED when max_waiting requests already wait, and
        NOT_FOUND for an adapter the model does not have."""
        if adapter:
            self._check_adapter(adapter)
        request = Request(list(prompt_ids), options, adapter or None, on_delta, on_error)
        with self._lock:
            if self._closed:
                raise WorkerError(grpc.StatusCode.UNAVAILABLE, "the model is being unloaded")
            # Requests that a free batch slot will take at the next step do not wait.
            free = max(0, self.max_batch_size - self._active)
            if len(self._waiting) - free >= self.max_waiting:
                raise resource_exhausted(
                    f"too many requests waiting ({len(self._waiting)} queued, {self._active} generating; "
                    "MAX_WAITING_REQUESTS bounds the queue); retry shortly"
                )
            self._waiting.append(request)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="batch-scheduler", daemon=True)
                self._thread.start()
            self._lock.notify()
        return request

    def cancel(self, request: Request) -> None:
        """Stop a request: a waiting one frees its queue slot now, a running one
        leaves the batch before the next step. Harmless after it finished."""
        request.cancelled.set()
        with self._lock:
            try:
                self._waiting.remove(request)
            except ValueError:
                pass

    def close(self) -> None:
        with self._lock:
            self._closed = True
            waiting, self._waiting = list(self._waiting), collections.deque()
            self._lock.notify()
        for request in waiting:
            request.on_error(WorkerError(grpc.StatusCode.UNAVAILABLE, "the model was unloaded"))

    def waiting(self) -> int:
        with self._lock:
            return len(self._waiting)

    def generating(self) -> int:
        """Requests admitted to the batch and not yet finished. Read without the
        lock: a pacing hint (DeltaBuffer) may see a count one step old."""
        return self._active

    # -- adapters ------------------------------------------------------------------

    def _lora_layers(self) -> list[Any]:
        try:
            from peft.tuners.lora import LoraLayer
        except ImportError:  # pragma: no cover - peft is in requirements.txt
            return []
        return [m for m in self.model.modules() if isinstance(m, LoraLayer)]

    def _check_adapter(self, adapter: str) -> None:
        if adapter == BASE_ADAPTER:
            return
        loaded: set[str] = set()
        for layer in self._lora_layers():
            loaded |= set(layer.lora_A.keys())
        if adapter not in loaded:
            raise not_found(f"adapter {adapter!r} is not loaded; loaded adapters: {sorted(loaded) or 'none'}")

    @contextmanager
    def _adapters(self, names: list[str | None]) -> Iterator[None]:
        """Route each row through its adapter for one forward, with the hook that
        peft's own `adapter_names=` uses, so it works whether peft wraps the model
        (PeftModel) or transformers injected the adapters (model.load_adapter)."""
        layers = self._lora_layers()
        if not layers:
            yield  # a plain model: every row is the base
            return
        rows = [name or self.default_adapter or BASE_ADAPTER for name in names]

        def inject(_module: Any, args: Any, kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
            kwargs["adapter_names"] = rows
            return args, kwargs

        handles = [layer.register_forward_pre_hook(inject, with_kwargs=True) for layer in layers]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    # -- the scheduler thread ------------------------------------------------------

    def _run(self) -> None:
        import torch

        with torch.inference_mode():
            while True:
                with self._lock:
                    while not self._closed and not self._waiting and not self._rows:
                        self._lock.wait()
                    if self._closed:
                        break
                    room = self.max_batch_size - len(self._rows)
                    admitted = [self._waiting.popleft() for _ in range(min(room, len(self._waiting)))]
                    self._active += len(admitted)
                live = [r for r in admitted if not r.cancelled.is_set()]
                if live:
                    # All of them in one forward; there is no prefill token budget:
                    # chunking a burst would only delay its last request's first token.
                    self._guarded(self._prefill, live, live)
                self._drop_cancelled()
                if self._rows:
                    self._guarded(self._step, self._rows)
                with self._lock:
                    self._active = len(self._rows)
        for request in self._rows:
            request.on_error(WorkerError(grpc.StatusCode.UNAVAILABLE, "the model was unloaded"))
        self._rows = []
        self._cache = None

    def _guarded(self, work: Callable[..., None], failing: list[Request], *args: Any) -> None:
        """Run a prefill or step; on an error, fail the requests it touched (and,
        for a step, reset the batch) rather than the scheduler."""
        try:
            work(*args)
        except Exception as exc:  # reported to each request it hit, the scheduler goes on
            log.exception("batched generation failed")
            for request in list(failing):
                request.on_error(exc)
            if work == self._step:
                self._rows, self._cache = [], None

    def _prefill(self, requests: list[Request]) -> None:
        import torch
        from transformers import DynamicCache

        for request in requests:
            request.detokenizer = IncrementalDetokenizer(self.tokenizer, request.prompt_ids)
            request.stops = StopMatcher(request.options.stop)
            request.generator = torch.Generator(device=self.device)
            if request.options.seed is not None:
                request.generator.manual_seed(request.options.seed)
            else:
                request.generator.seed()
        width = max(len(r.prompt_ids) for r in requests)
        # Token 0 stands in for padding: what it computes is masked, then zeroed.
        input_ids = torch.tensor([[0] * (width - len(r.prompt_ids)) + r.prompt_ids for r in requests])
        mask = torch.tensor([[0] * (width - len(r.prompt_ids)) + [1] * len(r.prompt_ids) for r in requests])
        input_ids, mask = input_ids.to(self.device), mask.to(self.device)
        padded = bool((mask == 0).any())
        # Each row counts its positions from its own first real token, as it would alone.
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        cache = DynamicCache(config=self.model.config)
        with self._forward_lock, self._adapters([r.adapter for r in requests]):
            # logits_to_keep=1: the prefill only needs the last position's logits
            # (real for every row, the padding being on the left). Without padding
            # (a lone request, equal lengths) no mask: the plain causal path.
            out = self.model(
                input_ids=input_ids,
                attention_mask=mask if padded else None,
                position_ids=positions,
                past_key_values=cache,
                use_cache=True,
                logits_to_keep=1,
            )
        if padded:
            # A padding query sees only masked keys; its softmax may be NaN, and so
            # its keys and values in the next layers. Masked still means 0 * value,
            # and 0 * NaN is NaN: zero the padding so it can never leak into a row.
            hidden = (mask == 0)[:, None, :, None]
            for layer in cache.layers:
                layer.keys.masked_fill_(hidden, 0)
                layer.values.masked_fill_(hidden, 0)
        logits = out.logits[:, -1]
        keep = [
            i
            for i, request in enumerate(requests)
            if self._accept(request, sample_token(logits[i], request.options, request.generator))
        ]
        if keep:
            self._join([requests[i] for i in keep], *self._select(cache, mask, keep))

    @staticmethod
    def _select(cache: Any, mask: Any, keep: list[int]) -> tuple[Any, Any]:
        """The rows `keep` of a cache and its mask, without the columns that are
        padding for every one of them (the longer prompts may have finished)."""
        import torch

        if len(keep) == mask.shape[0]:
            return cache, mask
        index = torch.tensor(keep, device=mask.device)
        mask = mask[index]
        first = int(mask.any(dim=0).int().argmax())
        for layer in cache.layers:
            layer.keys = layer.keys[index, :, first:]
            layer.values = layer.values[index, :, first:]
        return cache, mask[:, first:]

    def _join(self, requests: list[Request], cache: Any, mask: Any) -> None:
        """Append freshly prefilled rows (their cache and [rows, width] mask) to the batch."""
        import torch
        import torch.nn.functional as F

        positions = mask.sum(dim=1)
        if not self._rows:
            self._rows, self._cache, self._mask, self._positions = list(requests), cache, mask, positions
        else:
            width = max(self._mask.shape[1], mask.shape[1])
            old_pad, new_pad = width - self._mask.shape[1], width - mask.shape[1]
            for old, new in zip(self._cache.layers, cache.layers, strict=True):
                # Zero padding: masked keys get zero weight, and zero values keep
                # 0 * value finite (garbage there could be NaN, and 0 * NaN is NaN).
                old.keys = torch.cat([F.pad(old.keys, (0, 0, old_pad, 0)), F.pad(new.keys, (0, 0, new_pad, 0))])
                old.values = torch.cat([F.pad(old.values, (0, 0, old_pad, 0)), F.pad(new.values, (0, 0, new_pad, 0))])
            self._mask = torch.cat([F.pad(self._mask, (old_pad, 0)), F.pad(mask, (new_pad, 0))])
            self._positions = torch.cat([self._positions, positions])
            self._rows.extend(requests)
        self.max_rows_seen = max(self.max_rows_seen, len(self._rows))
        self.prefills += 1

    def _step(self) -> None:
        import torch

        rows = self._rows
        input_ids = torch.tensor([[r.token] for r in rows], device=self.device)
        self._mask = torch.cat([self._mask, self._mask.new_ones((len(rows), 1))], dim=1)
        with self._forward_lock, self._adapters([r.adapter for r in rows]):
            out = self.model(
                input_ids=input_ids,
                attention_mask=self._mask,
                position_ids=self._positions.unsqueeze(1),
                past_key_values=self._cache,
                use_cache=True,
            )
        self._positions = self._positions + 1
        self.steps += 1
        logits = out.logits[:, -1]
        greedy = torch.argmax(logits, dim=-1).tolist()  # one call for every greedy row
        keep = []
        for i, request in enumerate(rows):
            if request.options.temperature == 0:
                token = greedy[i]
            else:
                token = sample_token(logits[i], request.options, request.generator)
            if self._accept(request, token):
                keep.append(i)
        if len(keep) < len(rows):
            self._keep(keep)

    def _accept(self, request: Request, token: int) -> bool:
        """Stream one sampled token; False when the request is finished."""
        request.generated += 1
        if token in self.eos:
            self._finish(request, "", token, FinishReason.STOP)
            return False
        text, stopped = request.stops.push(request.detokenizer.push(token))
        if stopped:
            self._release(request, Delta(text, (token,), FinishReason.STOP))
            return False
        if request.generated >= request.options.max_tokens:
            self._finish(request, text, token, FinishReason.LENGTH)
            return False
        request.on_delta(Delta(text, (token,)))
        request.token = token
        return True

    def _finish(self, request: Request, text: str, token: int, reason: FinishReason) -> None:
        # The end of the stream makes every held-back character final.
        tail, stopped = request.stops.push(request.detokenizer.flush())
        text += tail
        if stopped:
            reason = FinishReason.STOP
        else:
            text += request.stops.flush()
        self._release(request, Delta(text, (token,), reason))

    def _release(self, request: Request, last: Delta) -> None:
        """Free a finished request's batch slot, then send its last delta: a client
        that reads the end of its stream and at once sends another request must
        find the slot free, not count against a full queue for the rest of a step."""
        with self._lock:
            self._active -= 1
        request.on_delta(last)

    def _drop_cancelled(self) -> None:
        keep = []
        for i, request in enumerate(self._rows):
            if request.cancelled.is_set():
                log.info("generation cancelled after %d tokens", request.generated)
                self.cancelled_rows += 1
                self.last_cancelled_after = request.generated
            else:
                keep.append(i)
        if len(keep) < len(self._rows):
            self._keep(keep)

    def _keep(self, keep: list[int]) -> None:
        """Shrink the batch to the rows `keep`, cutting columns that are padding everywhere."""
        if not keep:
            self._rows, self._cache, self._mask, self._positions = [], None, None, None
            return
        self._cache, self._mask = self._select(self._cache, self._mask, keep)
        self._positions = self._positions[keep]
        self._rows = [self._rows[i] for i in keep]
