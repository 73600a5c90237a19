"""The forgetting guard: a penalty that keeps the trainable weights near their start.

    penalty = weight / 2 * sum_i F_i * (theta_i - theta*_i)^2

theta* are the trainable weights when the stage starts: the previous stage's
adapter when the stage continues one, otherwise the fresh LoRA init (whose
update is zero, so the pull is toward the base model) and, with
train_embeddings, the base embeddings. F is 1 for "l2"; for "ewc" it is the
diagonal empirical Fisher information on general code (the general eval set, or
the replay rows), normalised to mean 1 so `weight` means the same for both.

The reference is computed once, before the first step, and saved next to the
checkpoints, so a resumed run pulls toward the same point and not toward its
own checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch


@dataclass
class ForgettingGuard:
    kind: str  # "l2" or "ewc"
    weight: float
    names: list[str]
    params: list[torch.nn.Parameter]
    reference: list[torch.Tensor]
    fisher: list[torch.Tensor] | None = None

    def penalty(self) -> torch.Tensor:
        # Runs on every micro-batch: multi-tensor (foreach) kernels instead of four
        # small ops per adapter matrix (hundreds of them in a 7B model) keep it cheap.
        params = self.params
        if any(p.dtype != torch.float32 for p in params):  # bf16 adapters on a GPU
            params = [p.float() for p in params]
        diffs = torch._foreach_sub(params, self.reference)
        squares = torch._foreach_mul(diffs, diffs)
        if self.fisher is not None:
            squares = torch._foreach_mul(squares, self.fisher)
        return 0.5 * self.weight * torch.stack([sq.sum() for sq in squares]).sum()

    def save(self, path: Path) -> None:
        from safetensors.torch import save_file

        tensors = {f"ref.{n}": r.cpu().contiguous() for n, r in zip(self.names, self.reference)}
        if self.fisher is not None:
            tensors.update({f"fisher.{n}": f.cpu().contiguous() for n, f in zip(self.names, self.fisher)})
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        save_file(tensors, str(tmp), metadata={"kind": self.kind})
        tmp.replace(path)


def _trainable(model: Any) -> tuple[list[str], list[torch.nn.Parameter]]:
    names, params = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            names.append(name)
            params.append(param)
    return names, params


def snapshot(model: Any, kind: str, weight: float) -> ForgettingGuard:
    names, params = _trainable(model)
    reference = [p.detach().float().clone() for p in params]
    return ForgettingGuard(kind, weight, names, params, reference)


def load(model: Any, path: Path, kind: str, weight: float) -> ForgettingGuard:
    """The guard saved at the stage's start, bound to this model's parameters."""
    from safetensors import safe_open

    names, params = _trainable(model)
    device = params[0].device
    reference, fisher = [], []
    with safe_open(str(path), framework="pt", device="cpu") as fh:
        keys = set(fh.keys())
        missing = [n for n in names if f"ref.{n}" not in keys]
        if missing:
            raise ValueError(f"{path} lacks reference weights for {missing[:3]}")
        for n in names:
            reference.append(fh.get_tensor(f"ref.{n}").to(device))
            if kind == "ewc":
                fisher.append(fh.get_tensor(f"fisher.{n}").to(device))
    return ForgettingGuard(kind, weight, names, params, reference, fisher if kind == "ewc" else None)


def estimate_fisher(
    model: Any,
    batches: Iterable[dict[str, torch.Tensor]],
    params: list[torch.nn.Parameter],
) -> list[torch.Tensor]:
    """Diagonal empirical Fisher: the mean squared gradient of the loss, per weight."""
    was_training = model.training
    model.eval()  # no dropout: the estimate is deterministic, so a resume could recompute it
    fisher = [torch.zeros_like(p, dtype=torch.float32) for p in params]
    count = 0
    for batch in batches:
        model.zero_grad(set_to_none=True)
        loss = model(**batch, use_cache=False).loss
        loss.backward()
        for f, p in zip(fisher, params, strict=True):
            if p.grad is not None:
                f += p.grad.detach().float().pow(2)
        count += 1
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    if count == 0:
        return [torch.ones_like(f) for f in fisher]
    mean = sum(f.sum() for f in fisher) / max(1, sum(f.numel() for f in fisher)) / count
    scale = 1.0 / (count * mean) if mean > 0 else 1.0
    return [f * scale for f in fisher]
