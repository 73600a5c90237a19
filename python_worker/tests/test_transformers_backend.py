"""The transformers backend on the tiny model: exactness, sampling, stops, cancel, prompts."""

from __future__ import annotations

import asyncio
import time
from contextlib import aclosing
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from python_worker.errors import WorkerError
from python_worker.serving.base import (
    ChatPrompt,
    Delta,
    FimPrompt,
    FinishReason,
    LoadOptions,
    SamplingOptions,
    TextPrompt,
)
from python_worker.serving.batching import BatchEngine
from python_worker.serving.transformers_backend import TransformersBackend

PROMPTS = ["defmodule Foo do", "iex> Enum.map([1, 2, 3], fn x ->", "-module(lists).\n"]


def run_generate(backend: Any, ids: list[int], options: SamplingOptions) -> list[Delta]:
    async def collect() -> list[Delta]:
        return [d async for d in backend.generate(ids, options)]

    return asyncio.run(collect())


def text_of(deltas: list[Delta]) -> str:
    return "".join(d.text for d in deltas)


def tokens_of(deltas: list[Delta]) -> list[int]:
    return [t for d in deltas for t in d.token_ids]


@pytest.mark.parametrize("prompt", PROMPTS)
def test_greedy_equals_hf_generate(backend: TransformersBackend, prompt: str) -> None:
    ids = backend.encode(TextPrompt(prompt))
    deltas = run_generate(backend, ids, SamplingOptions(max_tokens=40))
    with torch.inference_mode():
        reference = backend.model.generate(
            torch.tensor([ids]),
            attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            max_new_tokens=40,
            do_sample=False,
        )[0, len(ids) :].tolist()
    assert tokens_of(deltas) == reference
    assert text_of(deltas) == backend.tokenizer.decode(reference, skip_special_tokens=True)
    assert deltas[-1].finish_reason == FinishReason.LENGTH
    assert all(d.finish_reason is None for d in deltas[:-1])


def test_seeded_sampling_is_reproducible(backend: TransformersBackend) -> None:
    ids = backend.encode(TextPrompt(PROMPTS[0]))
    options = SamplingOptions(max_tokens=24, temperature=0.9, top_p=0.95, seed=1234)
    first = tokens_of(run_generate(backend, ids, options))
    again = tokens_of(run_generate(backend, ids, options))
    other = tokens_of(run_generate(backend, ids, replace(options, seed=4321)))
    assert first == again
    assert first != other


def test_stop_sequence_cuts_before_the_stop_text(backend: TransformersBackend) -> None:
    ids = backend.encode(TextPrompt(PROMPTS[1]))
    full = text_of(run_generate(backend, ids, SamplingOptions(max_tokens=40)))
    stop = full[6:9]
    assert len(stop) == 3 and stop.strip(), full
    deltas = run_generate(backend, ids, SamplingOptions(max_tokens=40, stop=("\u2603never", stop)))
    assert text_of(deltas) == full[: full.index(stop)]
    assert deltas[-1].finish_reason == FinishReason.STOP
    assert len(tokens_of(deltas)) < 40


def test_eos_finishes_with_stop(backend: TransformersBackend) -> None:
    ids = backend.encode(TextPrompt(PROMPTS[1]))
    greedy = tokens_of(run_generate(backend, ids, SamplingOptions(max_tokens=12)))
    # The first greedy token not seen before it becomes end-of-sequence (same weights).
    k = next((i for i in range(1, len(greedy)) if greedy[i] not in greedy[:i]), 0)
    variant = TransformersBackend()
    variant.model, variant.tokenizer, variant._info = backend.model, backend.tokenizer, backend.info
    variant._engine = BatchEngine(
        backend.model, backend.tokenizer, frozenset({greedy[k]}), "cpu", max_batch_size=4, max_waiting=4
    )
    deltas = run_generate(variant, ids, SamplingOptions(max_tokens=12))
    assert tokens_of(deltas) == greedy[: k + 1]  # the EOS token is counted, not printed
    assert deltas[-1].finish_reason == FinishReason.STOP
    assert text_of(deltas) == backend.tokenizer.decode(greedy[:k])


def test_closing_the_stream_removes_the_request_from_the_batch(backend: TransformersBackend) -> None:
    ids = backend.encode(TextPrompt(PROMPTS[0]))
    engine = backend.engine

    def batch_empties(timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while engine._rows or engine.waiting():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)  # polling with a deadline, not synchronising by sleep
        return True

    async def first_then_close() -> bool:
        async with aclosing(backend.generate(ids, SamplingOptions(max_tokens=2000))) as stream:
            assert (await anext(stream)).token_ids
        # Wait with the loop still running: only the cancel flag can stop the row.
        return await asyncio.to_thread(batch_empties, 5.0)

    cancelled_before = engine.cancelled_rows
    assert asyncio.run(first_then_close()), "the request stayed in the batch after its stream closed"
    # It left because it was cancelled (not by finishing), within a few tokens, not 2000.
    assert engine.cancelled_rows == cancelled_before + 1
    assert engine.last_cancelled_after < 50, engine.last_cancelled_after


def test_chat_prompt_uses_the_chat_template(backend: TransformersBackend) -> None:
    ids = backend.encode(ChatPrompt((("system", "Be brief."), ("user", "hi"))))
    text = backend.tokenizer.decode(ids)
    assert text == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    start = backend.tokenizer.convert_tokens_to_ids("<|im_start|>")
    assert ids.count(start) == 3  # special tokens, not their characters


def test_fim_prompt_uses_the_fim_tokens(backend: TransformersBackend) -> None:
    ids = backend.encode(FimPrompt("def f(x) do\n  ", "\nend"))
    vocab = backend.tokenizer.convert_tokens_to_ids
    assert ids[0] == vocab("<|fim_prefix|>") and ids[-1] == vocab("<|fim_middle|>")
    assert vocab("<|fim_suffix|>") in ids


def test_a_long_fim_prompt_is_cut_around_its_hole(backend: TransformersBackend) -> None:
    """A whole file sent as prefix and suffix keeps the code nearest the hole and
    fits the limit; under the limit the prompt is untouched."""
    prefix = "".join(f"  def f{i}(x), do: x + {i}\n" for i in range(400)) + "  def target(x) do\n"
    suffix = "  end\n" + "".join(f"  def g{i}(x), do: x * {i}\n" for i in range(400))
    whole = backend.encode(FimPrompt(prefix, suffix))
    assert len(whole) > 1000
    assert backend.encode(FimPrompt(prefix, suffix), fim_limit=len(whole)) == whole
    ids = backend.encode(FimPrompt(prefix, suffix), fim_limit=500)
    assert 450 < len(ids) <= 500
    text = backend.tokenizer.decode(ids)
    kept_prefix, rest = text.removeprefix("<|fim_prefix|>").split("<|fim_suffix|>")
    kept_suffix = rest.removesuffix("<|fim_middle|>")
    assert kept_prefix.endswith("  def target(x) do\n") and kept_suffix.startswith("  end\n")
    assert prefix.endswith(kept_prefix) and suffix.startswith(kept_suffix)


def test_fim_on_a_model_without_fim_tokens_is_invalid(backend: TransformersBackend) -> None:
    variant = TransformersBackend()
    variant.model, variant.tokenizer = backend.model, backend.tokenizer
    variant._info = replace(backend.info, fim=None)
    with pytest.raises(WorkerError) as raised:
        variant.encode(FimPrompt("a", "b"))
    assert raised.value.code.name == "INVALID_ARGUMENT"
    assert "fill-in-the-middle" in raised.value.message


def test_model_info(backend: TransformersBackend) -> None:
    info = backend.info
    assert info.backend == "transformers" and info.device == "cpu" and info.dtype == "float32"
    assert info.context_length == 2048
    assert info.parameters == sum(p.numel() for p in backend.model.parameters())
    assert info.fim is not None and info.fim.name == "qwen"
    assert info.has_chat_template


def test_load_applies_a_lora_adapter(backend: TransformersBackend, tiny_model: Path, tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])).save_pretrained(
        tmp_path / "lora"
    )
    adapted = TransformersBackend()
    info = adapted.load(LoadOptions(str(tiny_model), device="cpu", adapter=str(tmp_path / "lora")))
    assert info.active_adapter == str(tmp_path / "lora")
    ids = adapted.encode(TextPrompt(PROMPTS[0]))
    # A fresh LoRA adapter starts at zero (B = 0), so greedy output is unchanged.
    assert tokens_of(run_generate(adapted, ids, SamplingOptions(max_tokens=8))) == tokens_of(
        run_generate(backend, ids, SamplingOptions(max_tokens=8))
    )
    with pytest.raises(WorkerError) as raised:
        TransformersBackend().load(LoadOptions(str(tiny_model), device="cpu", adapter=str(tmp_path / "none")))
    assert raised.value.code.name == "NOT_FOUND"


def test_missing_model_directory_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(WorkerError) as raised:
        TransformersBackend().load(LoadOptions(str(tmp_path / "absent"), device="cpu"))
    assert raised.value.code.name == "NOT_FOUND" and "absent" in raised.value.message
