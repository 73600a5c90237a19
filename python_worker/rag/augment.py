"""Retrieval-augmented prompts: memory hits put into a prompt within the model's context.

For a GenerateRequest with `retrieval` set, generation.py calls `retrieve` (the
hits for the last user message, or the plain prompt) and then `fit`, which
adds hits in rank order as long as prompt + max_tokens stays inside the
context, measured with the model's own tokenizer (`backend.encode`): the
first hit that does not fit whole is cut to what does fit (when a useful
part does), and the rest are dropped. For chat the hits go into a system
message before the conversation (merged into the conversation's own system
message when it opens with one); for a plain prompt, in front of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from python_worker.errors import WorkerError, failed_precondition, invalid_argument
from python_worker.proto import worker_pb2 as pb
from python_worker.rag.store import Hit, MemoryStore
from python_worker.serving.base import ChatPrompt, FimPrompt, Prompt, TextPrompt

HEADER = "Notes from memory that may help (each with its source):"
# A hit cut shorter than this says too little to be worth its tokens.
MIN_TRIMMED_CHARS = 80


def query_of(prompt: Prompt) -> str:
    """What to search memory for: the last user message of a chat, or the plain prompt."""
    if isinstance(prompt, ChatPrompt):
        for role, content in reversed(prompt.messages):
            if role == "user" and content.strip():
                return content
        raise invalid_argument("retrieval: the chat has no user message to search memory for")
    if isinstance(prompt, TextPrompt):
        if not prompt.text.strip():
            raise invalid_argument("retrieval: the prompt is empty")
        return prompt.text
    raise invalid_argument("retrieval: not supported for fim prompts (send a chat or a plain prompt)")


def retrieve(memory: MemoryStore | None, retrieval: pb.Retrieval, prompt: Prompt) -> list[Hit]:
    """The memory hits for a request (blocking: embeds the query)."""
    query = query_of(prompt)
    if memory is None:
        raise failed_precondition("retrieval: this worker has no memory store")
    try:
        return memory.search(
            retrieval.collection,
            query,
            top_k=retrieval.top_k,
            min_score=retrieval.min_score if retrieval.HasField("min_score") else None,
            mode=retrieval.mode,
        )
    except WorkerError as exc:
        raise WorkerError(exc.code, f"retrieval: {exc.message}") from None


def context_text(hits: list[Hit]) -> str:
    notes = [f"[{i}] source: {hit.source}\n{hit.text}" for i, hit in enumerate(hits, 1)]
    return "\n\n".join([HEADER, *notes])


def with_hits(prompt: Prompt, hits: list[Hit]) -> Prompt:
    """The prompt with the hits in it (unchanged when there are none)."""
    if not hits:
        return prompt
    context = context_text(hits)
    if isinstance(prompt, ChatPrompt):
        messages = list(prompt.messages)
        if messages and messages[0][0] == "system":
            messages[0] = ("system", f"{context}\n\n{messages[0][1]}")
        else:
            messages.insert(0, ("system", context))
        return ChatPrompt(tuple(messages))
    if isinstance(prompt, TextPrompt):
        return TextPrompt(f"{context}\n\n{prompt.text}")
    assert not isinstance(prompt, FimPrompt)  # query_of refused it
    return prompt


def fit(
    encode: Callable[[Prompt], list[int]], prompt: Prompt, hits: list[Hit], max_tokens: int, context_length: int
) -> tuple[list[int], list[Hit]]:
    """(prompt token ids, hits used): as many hits as keep prompt + max_tokens <= context_length."""
    budget = context_length - max_tokens
    used: list[Hit] = []
    ids = encode(prompt)
    if len(ids) > budget:
        return ids, []  # no room at all: the prompt goes as it is
    for hit in hits:
        candidate = encode(with_hits(prompt, [*used, hit]))
        if len(candidate) <= budget:
            used.append(hit)
            ids = candidate
            continue
        trimmed = _trim(encode, prompt, used, hit, budget)
        if trimmed is not None:
            used.append(trimmed[1])
            ids = trimmed[0]
        break  # the budget is spent: later hits (ranked lower) cannot fit either
    return ids, used


def _trim(
    encode: Callable[[Prompt], list[int]], prompt: Prompt, used: list[Hit], hit: Hit, budget: int
) -> tuple[list[int], Hit] | None:
    """The longest prefix of the hit's text (whole words, by bisection) that fits, if a useful one does."""
    low, high = MIN_TRIMMED_CHARS, len(hit.text) - 1
    best: tuple[list[int], Hit] | None = None
    while low <= high:
        middle = (low + high) // 2
        cut = hit.text[:middle].rsplit(None, 1)[0] if " " in hit.text[:middle] else hit.text[:middle]
        candidate = replace(hit, text=cut + " …")
        ids = encode(with_hits(prompt, [*used, candidate]))
        if len(ids) <= budget:
            best = (ids, candidate)
            low = middle + 1
        else:
            high = middle - 1
    return best
