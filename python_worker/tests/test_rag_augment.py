"""Putting memory hits into a prompt within the context, measured with the tiny model's real tokenizer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from python_worker.errors import WorkerError
from python_worker.rag import augment
from python_worker.rag.store import Hit
from python_worker.serving import prompts
from python_worker.serving.base import ChatPrompt, FimPrompt, Prompt, TextPrompt

CONTEXT = 2048


def hit(n: int, words: int = 60) -> Hit:
    text = " ".join(f"fact{n}-{i}" for i in range(words))
    return Hit(id=str(n), source=f"log.jsonl:{n}", score=0.9 - n / 100, text=text, kind="conversation", timestamp="")


@pytest.fixture(scope="module")
def encode(tiny_model: Path) -> Callable[[Prompt], list[int]]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model))
    return lambda prompt: prompts.encode(tokenizer, prompt, None, "tiny")


def test_every_hit_goes_in_when_there_is_room_as_a_leading_system_message(encode) -> None:  # type: ignore[no-untyped-def]
    chat = ChatPrompt((("user", "What do we know?"),))
    hits = [hit(1, 10), hit(2, 10)]
    ids, used = augment.fit(encode, chat, hits, 256, CONTEXT)
    assert used == hits
    augmented = augment.with_hits(chat, hits)
    assert isinstance(augmented, ChatPrompt) and augmented.messages[0][0] == "system"
    assert "source: log.jsonl:1" in augmented.messages[0][1] and augmented.messages[1:] == chat.messages
    assert ids == encode(augmented)


def test_an_existing_system_message_is_kept_after_the_notes(encode) -> None:  # type: ignore[no-untyped-def]
    chat = ChatPrompt((("system", "Be terse."), ("user", "Q")))
    augmented = augment.with_hits(chat, [hit(1, 5)])
    assert isinstance(augmented, ChatPrompt) and len(augmented.messages) == 2
    assert augmented.messages[0][1].startswith(augment.HEADER) and augmented.messages[0][1].endswith("Be terse.")


@pytest.mark.parametrize("max_tokens", [1500, 1800, 1900, 1950, 2000])
def test_prompt_plus_max_tokens_never_exceeds_the_context(encode, max_tokens: int) -> None:  # type: ignore[no-untyped-def]
    prompt = TextPrompt("Tell me about the facts.")
    hits = [hit(n, 120) for n in range(1, 6)]
    ids, used = augment.fit(encode, prompt, hits, max_tokens, CONTEXT)
    assert len(ids) + max_tokens <= CONTEXT
    assert ids == encode(augment.with_hits(prompt, used))
    # Best first: what is used is a prefix of the ranking, and only the last one may be cut.
    assert [h.id for h in used] == [h.id for h in hits[: len(used)]]
    assert all(u.text == h.text for u, h in zip(used[:-1], hits, strict=False))
    if used and used[-1].text != hits[len(used) - 1].text:
        assert used[-1].text.endswith(" …") and hits[len(used) - 1].text.startswith(used[-1].text[:-2])
    # With a little more room, more of the memory would have fitted: the budget was used, not wasted.
    if len(used) < len(hits):
        assert len(encode(augment.with_hits(prompt, hits[: len(used) + 1]))) + max_tokens > CONTEXT


def test_no_room_at_all_leaves_the_prompt_as_it_is(encode) -> None:  # type: ignore[no-untyped-def]
    prompt = TextPrompt("x " * 50)
    ids, used = augment.fit(encode, prompt, [hit(1)], CONTEXT - 5, CONTEXT)
    assert used == [] and ids == encode(prompt)


def test_the_query_is_the_last_user_message_and_fim_is_refused() -> None:
    chat = ChatPrompt((("user", "first"), ("assistant", "a"), ("user", "second"), ("assistant", "b")))
    assert augment.query_of(chat) == "second"
    assert augment.query_of(TextPrompt("plain")) == "plain"
    for bad, message in [
        (FimPrompt("a", "b"), "not supported for fim"),
        (ChatPrompt((("system", "s"),)), "no user message"),
        (TextPrompt("  "), "prompt is empty"),
    ]:
        with pytest.raises(WorkerError, match=message):
            augment.query_of(bad)
