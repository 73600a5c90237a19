"""Batches of packed rows for attention without variable-length kernels (sdpa, eager).

trl's best-fit-decreasing packing always collates "padding-free": it concatenates
the batch's packed rows into ONE sequence of batch x max_length tokens and lets
position_ids mark where each document starts. Flash attention's varlen kernels
run that at the cost of the documents themselves. sdpa and eager attention (the
CPU, and GPUs without flash-attn) instead get a dense block-diagonal mask over
the whole concatenation: at batch 8 and 512 tokens, attention over 4,096 x 4,096
positions, 8x the work of eight 512 x 512 rows. On the tiny model that made a
packed step cost 3.7 s against 2.2 s unpacked on 2 cores.

`PackedRowsCollator` keeps the batch dimension: one packed row per batch row,
right-padded, with position_ids restarting at every document and no
attention_mask. transformers then derives a per-row block-diagonal causal mask
from the position_ids (`find_packed_sequence_indices`), so documents still never
attend to each other, and padding (after every real token) is never attended to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

IGNORE = -100
# The batch's real (unpadded) token count, for the trainer's throughput metric;
# GuardedSFTTrainer.compute_loss takes it out before the model sees the batch.
NUM_TOKENS = "num_tokens"


def needs_row_batches(model: Any) -> bool:
    """True unless the model attends with a varlen (flash) kernel, which trl's own collator suits."""
    implementation = str(getattr(model.config, "_attn_implementation", "") or "")
    return "flash" not in implementation


@dataclass
class PackedRowsCollator:
    """Collates trl's packed rows (input_ids, labels, seq_lengths) as (batch, length) tensors."""

    pad_token_id: int

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        ids = [torch.tensor(e["input_ids"]) for e in examples]
        labels = [torch.tensor(e.get("labels", e["input_ids"])) for e in examples]
        # Eval rows are not packed: one document each.
        lengths = [e.get("seq_lengths") or [len(e["input_ids"])] for e in examples]
        positions = DataCollatorForLanguageModeling.get_position_ids_from_packed_seq_lengths(lengths)
        width = max(len(row) for row in ids)

        def pad(rows: list[torch.Tensor], value: int) -> torch.Tensor:
            out = torch.full((len(rows), width), value, dtype=torch.long)
            for i, row in enumerate(rows):
                out[i, : len(row)] = row
            return out

        batch = {"input_ids": pad(ids, self.pad_token_id), "labels": pad(labels, IGNORE)}
        batch["position_ids"] = pad(positions, 0)
        # A document's first token is not predicted from the previous document's last.
        batch["labels"][batch["position_ids"] == 0] = IGNORE
        batch[NUM_TOKENS] = torch.tensor(sum(len(row) for row in ids))
        return batch
