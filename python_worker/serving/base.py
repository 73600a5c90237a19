"""The backend interface: what a generation engine (transformers, vLLM, ...) provides.

A backend object holds one loaded model. The worker calls, in this order:

    backend.load(LoadOptions(...)) -> ModelInfo   # blocking: run it in a thread
    backend.encode(prompt) -> token ids           # plain, chat or FIM prompt
    backend.generate(ids, options, adapter=None)  # async iterator of Deltas
    backend.close()                               # free the weights / engine

Everything here is transport-neutral plain data: the servicer converts it to and
from the protobuf messages.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import ClassVar, Protocol, runtime_checkable

from python_worker.fim import FimStyle


@dataclass(frozen=True)
class LoadOptions:
    """What to load; "auto" lets the backend pick (CUDA when present, bf16 on GPU)."""

    model: str
    device: str = "auto"
    dtype: str = "auto"
    adapter: str = ""


@dataclass(frozen=True)
class ModelInfo:
    id: str
    path: str
    backend: str
    device: str
    dtype: str
    context_length: int
    parameters: int
    fim: FimStyle | None
    has_chat_template: bool
    active_adapter: str = ""


@dataclass(frozen=True)
class TextPrompt:
    text: str


@dataclass(frozen=True)
class ChatPrompt:
    # (role, content) pairs, oldest first.
    messages: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class FimPrompt:
    prefix: str
    suffix: str


Prompt = TextPrompt | ChatPrompt | FimPrompt


@dataclass(frozen=True)
class SamplingOptions:
    """Validated sampling parameters; max_tokens is already capped by the context."""

    max_tokens: int
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0  # in (0, 1]; 1.0 = no nucleus cut
    seed: int | None = None
    stop: tuple[str, ...] = field(default_factory=tuple)


class FinishReason(enum.Enum):
    STOP = "stop"  # EOS or a stop sequence
    LENGTH = "length"  # max_tokens or the context


@dataclass(frozen=True)
class Delta:
    """New final text since the previous delta, the tokens that produced it, and
    (on the last delta only) why generation finished."""

    text: str
    token_ids: tuple[int, ...] = ()
    finish_reason: FinishReason | None = None


@runtime_checkable
class Backend(Protocol):
    name: ClassVar[str]

    @property
    def info(self) -> ModelInfo:
        """The loaded model (only valid after load)."""
        ...

    def load(self, options: LoadOptions) -> ModelInfo:
        """Load weights and tokenizer. Blocking; raises WorkerError for bad options."""
        ...

    def encode(self, prompt: Prompt, fim_limit: int | None = None) -> list[int]:
        """Token ids of a prompt built with the model's own tokenizer, chat template
        or FIM tokens; a FIM prompt over `fim_limit` tokens is cut around its hole
        (`prompts.encode`). Raises WorkerError(INVALID_ARGUMENT) for an unsupported kind."""
        ...

    def generate(
        self, prompt_ids: list[int], options: SamplingOptions, *, adapter: str | None = None
    ) -> AsyncIterator[Delta]:
        """Stream deltas; the last has finish_reason set. Closing the iterator early
        (cancellation) must stop the computation promptly. `adapter` names a LoRA
        adapter loaded on the model ("__base__" = the base; None = the backend's
        default); an unknown one is WorkerError(NOT_FOUND). Too many waiting
        requests is WorkerError(RESOURCE_EXHAUSTED)."""
        ...

    def close(self) -> None:
        """Release the model; called once no generation uses it any more."""
        ...
