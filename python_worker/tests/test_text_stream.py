"""Incremental detokenization and stop-sequence holding, on the tiny model's tokenizer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from python_worker.serving.text_stream import IncrementalDetokenizer, StopMatcher


@pytest.fixture(scope="module")
def tokenizer(tiny_model: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


@pytest.mark.parametrize(
    "text",
    [
        'defmodule Café do\n  @doc "héllo ✓"\nend',
        "emoji 😀🎉 and 中文字符 and ñ",
        "  leading spaces\tand\ttabs\n\n",
    ],
)
def test_deltas_are_final_and_add_up(tokenizer: Any, text: str) -> None:
    prompt = tokenizer("iex> ")["input_ids"]
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    detokenizer = IncrementalDetokenizer(tokenizer, prompt)
    deltas = [detokenizer.push(token) for token in ids]
    assert all("\ufffd" not in delta for delta in deltas)  # never half a character
    assert "".join(deltas) + detokenizer.flush() == text
    if not text.isascii():
        # Multi-byte characters span several byte-level tokens: some were held back.
        assert any(delta == "" for delta in deltas)


def test_flush_releases_an_incomplete_tail(tokenizer: Any) -> None:
    ids = tokenizer("😀", add_special_tokens=False)["input_ids"]
    assert len(ids) > 1
    detokenizer = IncrementalDetokenizer(tokenizer, [])
    assert "".join(detokenizer.push(t) for t in ids[:-1]) == ""
    assert detokenizer.flush() == tokenizer.decode(ids[:-1])


def test_stop_matcher_holds_possible_prefixes() -> None:
    stops = StopMatcher(["\nend", "STOP"])
    assert stops.push("abc\n") == ("abc", False)  # "\n" may start "\nend"
    assert stops.push("e") == ("", False)
    assert stops.push("x") == ("\nex", False)  # it wasn't
    assert stops.push("ST") == ("", False)
    assert stops.push("OP and more") == ("", True)


def test_stop_matcher_cuts_at_the_earliest_stop_in_one_delta() -> None:
    stops = StopMatcher(["b", "xyz"])
    assert stops.push("axyzb") == ("a", True)


def test_stop_matcher_flush_and_no_stops() -> None:
    stops = StopMatcher(["end"])
    assert stops.push("the en") == ("the ", False)
    assert stops.flush() == "en"
    assert StopMatcher(["", ""]).push("anything") == ("anything", False)
