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


def _ranked(keys: Iterable[str], seed: int) -> list[str]:
    return sorted(set(keys), key=lambda k: (rank(seed, k), k))


def _eval_count(n: int, eval_fraction: float, min_eval: int) -> int:
    """How many of n keys go to eval: the fraction, at least min_eval, never all."""
    if n < 2:
        return 0
    return min(max(math.floor(eval_fraction * n + 0.5), min(min_eval, n - 1)), n - 1)


def assign(
    keys: Iterable[str],
    seed: int,
    eval_fraction: float,
    min_eval: int,
    groups: Iterable[Iterable[str]] = (),
) -> dict[str, str]:
    """Maps each key to "train" or "eval".

    `groups` are subsets of the keys that feed different stages (code packages,
    books). The global draw can miss a small group entirely, leaving a stage
    with no eval rows, so each group of two or more keys is then topped up to
    its own count from its lowest ranks; and a group the draw took whole gives
    its highest-ranked key back to train. Either way a key has one split.
    """
    ordered = _ranked(keys, seed)
    n_eval = _eval_count(len(ordered), eval_fraction, min_eval)
    result = {k: ("eval" if i < n_eval else "train") for i, k in enumerate(ordered)}
    for group in groups:
        members = _ranked(group, seed)
        want = _eval_count(len(members), eval_fraction, min_eval)
        have = sum(result[k] == "eval" for k in members)
        for k in members:
            if have >= want:
                break
            if result[k] == "train":
                result[k] = "eval"
                have += 1
        if len(members) >= 2 and have == len(members):
            result[members[-1]] = "train"
    return result


def sample(seed: int, *parts: str) -> float:
    """A deterministic number in [0, 1) for a sampling decision about `parts`."""
    h = hashlib.sha256("\x00".join((str(seed), *parts)).encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64
