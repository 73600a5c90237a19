"""Generate: validate a GenerateRequest, run it on a backend, stream GenerateResponses.

The servicer's Generate is this function; the transport only moves the messages.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import replace

from python_worker.errors import invalid_argument, out_of_range
from python_worker.models import ModelManager
from python_worker.proto import worker_pb2 as pb
from python_worker.rag import augment
from python_worker.rag.memory import hit_proto
from python_worker.rag.store import MemoryStore
from python_worker.serving.base import (
    ChatPrompt,
    FimPrompt,
    FinishReason,
    Prompt,
    SamplingOptions,
    TextPrompt,
)
from python_worker.threads import run_in_thread

DEFAULT_MAX_TOKENS = 256

_FINISH = {
    FinishReason.STOP: pb.FINISH_REASON_STOP,
    FinishReason.LENGTH: pb.FINISH_REASON_LENGTH,
}


def sampling_options(params: pb.SamplingParams) -> SamplingOptions:
    """Validated options; max_tokens 0 stays 0 here and means the default."""
    if params.max_tokens < 0:
        raise invalid_argument(f"params.max_tokens must be >= 0, got {params.max_tokens}")
    if not math.isfinite(params.temperature) or params.temperature < 0:
        raise invalid_argument(f"params.temperature must be >= 0, got {params.temperature}")
    # `optional`: absent means no nucleus cut; a value that is set is used as
    # given, so 0 is an error here rather than quietly becoming 1.0.
    top_p = params.top_p if params.HasField("top_p") else 1.0
    if not (0 < top_p <= 1):  # also rejects NaN
        raise invalid_argument(
            f"params.top_p must be in (0, 1] (leave it unset for 1.0; use temperature 0 for greedy), got {top_p}"
        )
    return SamplingOptions(
        max_tokens=params.max_tokens,
        temperature=params.temperature,
        top_p=top_p,
        seed=params.seed if params.HasField("seed") else None,
        stop=tuple(s for s in params.stop if s),
    )


def fim_reserve(options: SamplingOptions, context_length: int) -> int:
    """Tokens a too-long FIM prompt leaves for the completion when it is cut to
    fit: the request's max_tokens (or the default), at most half the context, so
    the code around the hole is never cut to nothing."""
    return min(options.max_tokens or DEFAULT_MAX_TOKENS, context_length // 2)


def prompt_of(request: pb.GenerateRequest) -> Prompt:
    kind = request.WhichOneof("input")
    if kind == "prompt":
        return TextPrompt(request.prompt)
    if kind == "chat":
        return ChatPrompt(tuple((m.role, m.content) for m in request.chat.messages))
    if kind == "fim":
        return FimPrompt(request.fim.prefix, request.fim.suffix)
    raise invalid_argument("one of prompt, chat or fim is required")


async def generate(
    models: ModelManager,
    request: pb.GenerateRequest,
    arrival_ns: int | None = None,
    *,
    memory: MemoryStore | None = None,
) -> AsyncIterator[pb.GenerateResponse]:
    """Stream the responses of one request; the last carries finish_reason and usage."""
    arrival_ns = arrival_ns if arrival_ns is not None else time.monotonic_ns()
    options = sampling_options(request.params)
    prompt = prompt_of(request)
    rag = request.HasField("retrieval")
    # Searching embeds the query: off the loop, and before a backend is held.
    hits = await run_in_thread(augment.retrieve, memory, request.retrieval, prompt) if rag else []
    async with models.use(request.model) as backend:
        info = backend.info
        if rag:
            reserve = min(options.max_tokens or DEFAULT_MAX_TOKENS, info.context_length - 1)
            prompt_ids, hits = augment.fit(backend.encode, prompt, hits, reserve, info.context_length)
        else:
            prompt_ids = backend.encode(
                prompt, fim_limit=info.context_length - fim_reserve(options, info.context_length)
            )
        n_prompt = len(prompt_ids)
        if n_prompt == 0:
            raise invalid_argument("the prompt encodes to no tokens")
        if n_prompt + 1 > info.context_length:
            raise out_of_range(f"prompt has {n_prompt} tokens; model context is {info.context_length}")
        # Never run past the context: the cap turns into FINISH_REASON_LENGTH.
        max_tokens = min(options.max_tokens or DEFAULT_MAX_TOKENS, info.context_length - n_prompt)
        options = replace(options, max_tokens=max_tokens)

        completion = 0
        first_token_ns: int | None = None
        async with aclosing(backend.generate(prompt_ids, options)) as deltas:
            async for delta in deltas:
                if delta.token_ids and first_token_ns is None:
                    first_token_ns = time.monotonic_ns()
                completion += len(delta.token_ids)
                response = pb.GenerateResponse(text=delta.text, token_ids=delta.token_ids, model=info.id)
                if rag:
                    # The hits used go out once, on the first message (an empty list when none).
                    response.sources.extend(hit_proto(h) for h in hits)
                    rag = False
                if delta.finish_reason is not None:
                    response.finish_reason = _FINISH[delta.finish_reason]
                    response.usage.CopyFrom(
                        pb.Usage(
                            prompt_tokens=n_prompt,
                            completion_tokens=completion,
                            total_tokens=n_prompt + completion,
                            time_to_first_token_us=((first_token_ns or time.monotonic_ns()) - arrival_ns) // 1000,
                        )
                    )
                yield response
                if delta.finish_reason is not None:
                    return
