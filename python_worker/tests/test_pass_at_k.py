"""pass@k against values computed by hand from 1 - C(n-c, k) / C(n, k)."""

from __future__ import annotations

import pytest

from python_worker.evaluation.pass_at_k import mean_pass_at_k, pass_at_k


@pytest.mark.parametrize(
    ("n", "c", "k", "want"),
    [
        (1, 1, 1, 1.0),
        (1, 0, 1, 0.0),
        (10, 1, 1, 0.1),  # c/n
        (10, 3, 1, 0.3),
        (10, 1, 10, 1.0),  # one of all ten passes
        (10, 0, 10, 0.0),
        (5, 2, 2, 0.7),  # 1 - C(3,2)/C(5,2) = 1 - 3/10
        (20, 3, 10, 1 - 720 / 6840),  # 1 - C(17,10)/C(20,10) = 1 - (10*9*8)/(20*19*18)
        (4, 1, 2, 0.5),  # 1 - C(3,2)/C(4,2) = 1 - 3/6
    ],
)
def test_pass_at_k_matches_hand_computed_values(n: int, c: int, k: int, want: float) -> None:
    assert pass_at_k(n, c, k) == pytest.approx(want, abs=1e-12)


def test_large_n_stays_finite() -> None:
    # C(1000, 500) overflows a float; the product form does not.
    assert 0.0 < pass_at_k(1000, 1, 500) == pytest.approx(0.5)


def test_mean_over_problems_and_too_few_samples() -> None:
    assert mean_pass_at_k([(10, 1), (10, 3)], 1) == pytest.approx(0.2)
    assert mean_pass_at_k([(10, 1), (5, 5)], 10) is None
    assert mean_pass_at_k([], 1) is None


@pytest.mark.parametrize(("n", "c", "k"), [(5, 6, 1), (5, -1, 1), (5, 1, 0), (5, 1, 6)])
def test_bad_counts_are_rejected(n: int, c: int, k: int) -> None:
    with pytest.raises(ValueError, match="need"):
        pass_at_k(n, c, k)
