"""scripts/make_tiny_model.py: a from_pretrained-loadable model with FIM and chat tokens."""

from __future__ import annotations

from pathlib import Path

import pytest

from python_worker import fim
from python_worker.tests.conftest import load_make_tiny_model

CORPUS = """\
defmodule Greeter do
  @moduledoc "Says hello."
  def hello(name), do: "Hello, #{name}!"
end

iex> Enum.map([1, 2, 3], fn x -> x * 2 end)
[2, 4, 6]

-module(greeter).
-export([hello/1]).
hello(Name) -> io:format("Hello, ~s!~n", [Name]).
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    corpus = tmp_path_factory.mktemp("corpus") / "greeter.ex"
    corpus.write_text(CORPUS * 20)
    out = tmp_path_factory.mktemp("models") / "tiny"
    assert load_make_tiny_model().build(out, corpus=[corpus], vocab_size=400, seed=7)
    return out


def test_round_trip_with_from_pretrained(built: Path) -> None:
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(built)
    model = AutoModelForCausalLM.from_pretrained(built)
    assert model.config.model_type == "qwen2"
    assert model.config.vocab_size == len(tokenizer)
    assert model.config.max_position_embeddings == 2048
    # The tokenizer transformers rebuilds encodes exactly like the one we trained.
    raw = Tokenizer.from_file(str(built / "tokenizer.json"))
    text = 'def hello(name), do: "Hello, #{name}!" 12345 <|im_end|>'
    assert tokenizer(text)["input_ids"] == raw.encode(text).ids
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text


def test_special_tokens_and_chat_template(built: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(built)
    assert tokenizer.eos_token == "<|endoftext|>" and tokenizer.pad_token == "<|endoftext|>"
    style = fim.detect(tokenizer.get_vocab())
    assert style is not None and style.name == "qwen"
    for token in ("<|im_start|>", "<|im_end|>", "<|fim_pad|>", "<|file_sep|>", "<|repo_name|>"):
        assert len(tokenizer(token, add_special_tokens=False)["input_ids"]) == 1, token
    chat = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert chat == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_build_is_reproducible_and_idempotent(built: Path, tmp_path: Path) -> None:
    make_tiny_model = load_make_tiny_model()
    corpus = tmp_path / "c.ex"
    corpus.write_text(CORPUS * 20)
    assert not make_tiny_model.build(built, corpus=[corpus], vocab_size=400, seed=7)  # kept
    again = tmp_path / "again"
    assert make_tiny_model.build(again, corpus=[corpus], vocab_size=400, seed=7)
    assert (again / "model.safetensors").read_bytes() == (built / "model.safetensors").read_bytes()
    assert (again / "tokenizer.json").read_text() == (built / "tokenizer.json").read_text()
    # --force replaces a complete model in place, leaving no temporary directories.
    assert make_tiny_model.build(again, corpus=[corpus], vocab_size=300, seed=7, force=True)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_missing_corpus_fails_clearly(tmp_path: Path) -> None:
    make_tiny_model = load_make_tiny_model()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(make_tiny_model.BuildError, match="no corpus found"):
        make_tiny_model.build(tmp_path / "out", corpus=[empty])
    with pytest.raises(make_tiny_model.BuildError, match="does not exist"):
        make_tiny_model.build(tmp_path / "out", corpus=[tmp_path / "nope"])
    assert not (tmp_path / "out").exists()
