"""Eval loss: the mean next-token loss over the supervised tokens of a token set.

Token-weighted (every supervised token counts once, whatever its row), which
is what perplexity means. The LM head runs on chunks of positions so a large
vocabulary never materialises [batch, seq, vocab] logits at once.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from python_worker.training.data import IGNORE
from python_worker.training.errors import Cancelled

_HEAD_CHUNK = 1024


@dataclass
class LossResult:
    loss: float
    tokens: int
    sequences: int

    @property
    def perplexity(self) -> float:
        return math.exp(min(self.loss, 50.0)) if self.tokens else float("nan")


def _parts(model: Any) -> tuple[Any, Any]:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.get_decoder(), base.get_output_embeddings()


def batches(
    columns: dict[str, list[list[int]]], batch_size: int, pad_id: int, device: Any
) -> list[dict[str, torch.Tensor]]:
    """Padded batches, rows sorted by length so little of each batch is padding."""
    order = sorted(range(len(columns["input_ids"])), key=lambda i: len(columns["input_ids"][i]))
    out = []
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        width = max(len(columns["input_ids"][i]) for i in idx)
        ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
        labels = torch.full((len(idx), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):
            n = len(columns["input_ids"][i])
            ids[row, :n] = torch.tensor(columns["input_ids"][i])
            labels[row, :n] = torch.tensor(columns["labels"][i])
            mask[row, :n] = 1
        out.append(
            {
                "input_ids": ids.to(device),
                "attention_mask": mask.to(device),
                "labels": labels.to(device),
            }
        )
    return out


@torch.no_grad()
def eval_loss(
    model: Any,
    columns: dict[str, list[list[int]]],
    batch_size: int,
    pad_id: int,
    cancel: threading.Event | None = None,
) -> LossResult:
    """Mean supervised-token loss of `model` on `columns` (input_ids/labels lists)."""
    if not columns["input_ids"]:
        return LossResult(float("nan"), 0, 0)
    device = next(p for p in model.parameters()).device
    decoder, head = _parts(model)
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        for batch in batches(columns, batch_size, pad_id, device):
            if cancel is not None and cancel.is_set():
                raise Cancelled("cancelled during evaluation")
            hidden = decoder(
                input_ids=batch["input_ids"],
                attention_mask=batch["attention_mask"],
                use_cache=False,
            ).last_hidden_state
            # Position t predicts token t+1.
            hidden, targets = hidden[:, :-1], batch["labels"][:, 1:]
            for start in range(0, hidden.shape[1], _HEAD_CHUNK):
                h = hidden[:, start : start + _HEAD_CHUNK]
                t = targets[:, start : start + _HEAD_CHUNK]
                if not (t != IGNORE).any():
                    continue
                logits = head(h).float()
                total += F.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]),
                    t.reshape(-1),
                    ignore_index=IGNORE,
                    reduction="sum",
                ).item()
                count += int((t != IGNORE).sum())
    finally:
        model.train(was_training)
    return LossResult(total / count if count else float("nan"), count, len(columns["input_ids"]))
