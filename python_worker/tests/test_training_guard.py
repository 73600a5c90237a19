"""The forgetting guard's penalty and gradient match their formula, for l2 and ewc."""

from __future__ import annotations

import pytest
import torch

from python_worker.training.guard import ForgettingGuard


def make(kind: str, dtype: torch.dtype = torch.float32) -> ForgettingGuard:
    gen = torch.Generator().manual_seed(0)
    shapes = [(8, 4), (4, 8), (16,)]
    params = [torch.nn.Parameter(torch.randn(s, generator=gen).to(dtype)) for s in shapes]
    reference = [p.detach().float() + 0.1 * torch.randn(p.shape, generator=gen) for p in params]
    fisher = [torch.rand(p.shape, generator=gen) for p in params] if kind == "ewc" else None
    return ForgettingGuard(kind, 0.7, [f"p{i}" for i in range(len(params))], params, reference, fisher)


@pytest.mark.parametrize("kind", ["l2", "ewc"])
def test_penalty_and_gradient_follow_the_formula(kind):
    guard = make(kind)
    fisher = guard.fisher or [torch.ones_like(r) for r in guard.reference]
    expected = (
        0.5 * 0.7 * sum((f * (p.detach() - r) ** 2).sum() for p, r, f in zip(guard.params, guard.reference, fisher))
    )
    penalty = guard.penalty()
    assert penalty.item() == pytest.approx(expected.item(), rel=1e-6)
    penalty.backward()
    for p, r, f in zip(guard.params, guard.reference, fisher):
        assert torch.allclose(p.grad, 0.7 * f * (p.detach() - r), atol=1e-6)


def test_at_the_anchor_the_penalty_and_its_gradient_are_zero():
    guard = make("ewc")
    guard.reference = [p.detach().clone() for p in guard.params]
    penalty = guard.penalty()
    penalty.backward()
    assert penalty.item() == 0.0
    assert all(torch.count_nonzero(p.grad) == 0 for p in guard.params)


def test_bf16_weights_are_compared_in_fp32():
    guard = make("l2", torch.bfloat16)
    penalty = guard.penalty()
    assert penalty.dtype == torch.float32 and penalty.item() > 0
    penalty.backward()
    assert all(p.grad is not None and p.grad.dtype == torch.bfloat16 for p in guard.params)
