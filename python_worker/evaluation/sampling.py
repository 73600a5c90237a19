"""Completions from a loaded Hugging Face model (+ adapter) for evaluation.

Prompts are encoded as the serving backends encode them (`serving.prompts`),
so a score measures the model as it is served. Greedy when temperature is 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from python_worker.serving.base import Prompt
from python_worker.serving.prompts import encode


@dataclass(frozen=True)
class Sampling:
    max_tokens: int = 512  # MultiPL-E's limit
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None


@torch.no_grad()
def complete(
    model: Any,
    tokenizer: Any,
    prompt: Prompt,
    n: int,
    sampling: Sampling,
    context_length: int,
    stop: tuple[str, ...] = (),
    fim_style: Any = None,
) -> list[str]:
    """`n` completions of `prompt` (only the new text; stop strings end generation early).
    A FIM prompt that leaves less than `sampling.max_tokens` of the context is cut
    around its hole, as serving cuts it."""
    ids = encode(tokenizer, prompt, fim_style, "the evaluated model", context_length - sampling.max_tokens)
    room = context_length - len(ids)
    if room < 1:
        raise ValueError(f"the prompt has {len(ids)} tokens; the model's context is {context_length}")
    device = next(p for p in model.parameters()).device
    input_ids = torch.tensor([ids], device=device)
    greedy = sampling.temperature == 0
    if sampling.seed is not None:
        torch.manual_seed(sampling.seed)
    kwargs: dict[str, Any] = {
        "max_new_tokens": min(sampling.max_tokens, room),
        "do_sample": not greedy,
        "num_return_sequences": n,
        "pad_token_id": tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
    }
    if not greedy:
        kwargs.update(temperature=sampling.temperature, top_p=sampling.top_p, top_k=0)
    if stop:
        kwargs.update(stop_strings=list(stop), tokenizer=tokenizer)
    out = model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), **kwargs)
    return [tokenizer.decode(row[len(ids) :], skip_special_tokens=True) for row in out]
