"""A scriptable in-memory backend, for servicer and lifecycle tests without torch."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import ClassVar

from python_worker.errors import not_found
from python_worker.serving.base import (
    ChatPrompt,
    Delta,
    FimPrompt,
    FinishReason,
    LoadOptions,
    ModelInfo,
    Prompt,
    SamplingOptions,
    TextPrompt,
)


class FakeBackend:
    """Tokens are characters; the reply is `reply` repeated, one char per token.

    `gate` (when given) blocks load() until set, so tests can observe "starting".
    """

    name: ClassVar[str] = "fake"

    def __init__(self, *, gate: threading.Event | None = None, reply: str = "abc", context: int = 64) -> None:
        self.gate = gate
        self.reply = reply
        self.context = context
        self.closed = False
        self.cancelled = threading.Event()
        # The options of every generate() call, so tests can see what reached the backend.
        self.options: list[SamplingOptions] = []
        self._info: ModelInfo | None = None

    @property
    def info(self) -> ModelInfo:
        assert self._info is not None
        return self._info

    def load(self, options: LoadOptions) -> ModelInfo:
        if self.gate is not None:
            assert self.gate.wait(30), "test never opened the load gate"
        if options.model.startswith("/missing"):
            raise not_found(f"model directory {options.model} does not exist")
        self._info = ModelInfo(
            id=options.model,
            path=options.model,
            backend="fake",
            device="cpu",
            dtype="float32",
            context_length=self.context,
            parameters=1,
            fim=None,
            has_chat_template=False,
            active_adapter=options.adapter,
        )
        return self._info

    def encode(self, prompt: Prompt, fim_limit: int | None = None) -> list[int]:
        if isinstance(prompt, TextPrompt):
            return [ord(c) for c in prompt.text]
        if isinstance(prompt, ChatPrompt):
            return [ord(c) for _, content in prompt.messages for c in content]
        assert isinstance(prompt, FimPrompt)
        prefix, suffix = prompt.prefix, prompt.suffix
        if fim_limit is not None:  # one id per character: drop the prefix's start, then the suffix's end
            over = max(0, len(prefix) + len(suffix) - fim_limit)
            prefix, suffix = prefix[min(over, len(prefix)) :], suffix[: len(suffix) - max(0, over - len(prefix))]
        return [ord(c) for c in prefix + suffix]

    async def generate(self, prompt_ids: list[int], options: SamplingOptions) -> AsyncIterator[Delta]:
        self.options.append(options)
        try:
            for i in range(options.max_tokens):
                await asyncio.sleep(0)  # a real backend yields to the loop between tokens
                char = self.reply[i % len(self.reply)]
                last = i == options.max_tokens - 1
                yield Delta(char, (ord(char),), FinishReason.LENGTH if last else None)
        except GeneratorExit:
            self.cancelled.set()
            raise

    def close(self) -> None:
        self.closed = True
