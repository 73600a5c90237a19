"""Train/eval split by source (package or repo name), never by file.

Every split key gets a rank from sha256(seed, key); the lowest ranks go to eval.
The choice depends only on the seed and the set of keys, not on input order or
on which worker saw what, and all versions of a package share a key.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable


def rank(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}\x00{key}".encode()).hexdigest()


def assign(keys: Iterable[str], seed: int, eval_fraction: float, min_eval: int) -> dict[str, str]:
    ordered = sorted(set(keys), key=lambda k: (rank(seed, k), k))
    n = len(ordered)
    n_eval = math.floor(eval_fraction * n + 0.5)
    if n >= 2:
        n_eval = max(n_eval, min(min_eval, n - 1))
    n_eval = min(n_eval, n - 1) if n >= 1 else 0
    return {k: ("eval" if i < n_eval else "train") for i, k in enumerate(ordered)}


def sample(seed: int, *parts: str) -> float:
    """A deterministic number in [0, 1) for a sampling decision about `parts`."""
    h = hashlib.sha256("\x00".join((str(seed), *parts)).encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64
