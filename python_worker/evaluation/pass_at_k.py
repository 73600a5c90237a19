"""pass@k: the unbiased estimator of Chen et al. 2021 ("Evaluating Large Language
Models Trained on Code", the Codex paper).

For one problem with n samples of which c pass, pass@k = 1 - C(n-c, k) / C(n, k),
computed as 1 - prod_{i=n-c+1}^{n} (1 - k/i) so no huge binomials appear.
"""

from __future__ import annotations

from collections.abc import Iterable


def pass_at_k(n: int, c: int, k: int) -> float:
    """Estimated probability that at least one of k samples (of n, c correct) passes."""
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")
    if n - c < k:
        return 1.0
    prob_all_fail = 1.0
    for i in range(n - c + 1, n + 1):
        prob_all_fail *= 1.0 - k / i
    return 1.0 - prob_all_fail


def mean_pass_at_k(counts: Iterable[tuple[int, int]], k: int) -> float | None:
    """Mean pass@k over problems given (n, c) each; None when a problem has < k samples."""
    values = []
    for n, c in counts:
        if n < k:
            return None
        values.append(pass_at_k(n, c, k))
    return sum(values) / len(values) if values else None
