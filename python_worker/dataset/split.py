"""Train/eval split: whole packages where possible, aiming at a share of the data.

Sources feed two groups of stages: code (stages 1-2) and docs (stage 3, Markdown
and books). Each group holds out about `eval_fraction` of its kept bytes (a
proxy for tokens), chosen in this order of preference:

1. package: whole packages (all versions share a key), walked in a seeded
   random order; a package is taken when that brings the eval share closer to
   the target, so a package more than twice the target is never taken whole.
   The docs group first counts the packages the code group already took, then
   takes docs-only sources (books, doc scrapes), never a code package's docs
   alone, so the code share is not pushed off its target.
2. file: when fewer than `min_eval_sources` packages could be taken (a small
   corpus, or one dominated by big packages), files of the group are chosen
   the same way; at least one, never all.
3. row: when the group has a single file, the builder moves rows after the fact
   (see build._hold_out_rows).

Every choice depends only on the seed and the kept files, not on input order or
on which worker saw what.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

CODE, DOCS = "code", "docs"
GROUP_STAGES = {CODE: (1, 2), DOCS: (3,)}


def rank(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}\x00{key}".encode()).hexdigest()


def choose(
    weights: dict[str, int],
    seed: int,
    target: float,
    start: float = 0.0,
    allowed: Iterable[str] | None = None,
) -> list[str]:
    """Keys to add to eval, walking `allowed` (default: all) in seeded order and
    taking each one that brings the eval weight (from `start`) closer to `target`.

    A key weighing more than twice what is still missing is never taken."""
    pool = weights if allowed is None else {k: weights[k] for k in allowed}
    taken: list[str] = []
    have = start
    for key in sorted(pool, key=lambda k: (rank(seed, k), k)):
        w = pool[key]
        if w > 0 and abs(have + w - target) < abs(have - target):
            taken.append(key)
            have += w
    return taken


@dataclass
class Split:
    """Where every kept file goes, and how each group was split."""

    fraction: float
    keys: dict[str, str] = field(default_factory=dict)  # split key -> "train" | "eval"
    eval_files: set[tuple[str, str]] = field(default_factory=set)  # (split key, rel) from a file split
    modes: dict[str, str] = field(default_factory=dict)  # group -> package | file | row | none | off
    weights: dict[str, dict[str, int]] = field(default_factory=dict)  # group -> key -> bytes

    def where(self, key: str, rel: str) -> str:
        if (key, rel) in self.eval_files:
            return "eval"
        return self.keys.get(key, "train")


def assign(
    files: dict[str, list[tuple[str, int, str]]],
    seed: int,
    eval_fraction: float,
    min_eval_sources: int,
    enabled: dict[str, bool],
) -> Split:
    """files: split key -> [(rel, bytes, group)] of the kept files; enabled: group -> on."""
    split = Split(fraction=eval_fraction)
    weights: dict[str, dict[str, int]] = {CODE: {}, DOCS: {}}
    for key, entries in files.items():
        for _rel, size, group in entries:
            weights[group][key] = weights[group].get(key, 0) + size
    split.weights = weights
    for key in sorted(files):
        if any(weights[g].get(key) for g in weights):
            split.keys[key] = "train"
    for group in (CODE, DOCS):
        if not enabled.get(group, True):
            split.modes[group] = "off"
            continue
        w = weights[group]
        total = sum(w.values())
        target = eval_fraction * total
        if total == 0 or eval_fraction <= 0:
            split.modes[group] = "none"
            continue
        already = [k for k in w if split.keys[k] == "eval"]
        start = float(sum(w[k] for k in already))
        if group == CODE:
            taken = choose(w, seed, target)
        else:  # docs-only sources, so the code share stays where it was put
            taken = choose(w, seed, target, start, [k for k in w if k not in already and not weights[CODE].get(k)])
        if len(already) + len(taken) >= max(min_eval_sources, 1) and len(already) + len(taken) < len(w):
            for k in taken:
                split.keys[k] = "eval"
            split.modes[group] = "package"
            continue
        if already:
            # The code group's packages already give this group eval data.
            split.modes[group] = "package"
            continue
        split.modes[group] = _by_file(split, files, group, seed, target)
    return split


def _by_file(split: Split, files: dict[str, list[tuple[str, int, str]]], group: str, seed: int, target: float) -> str:
    """Hold out files of the group (keys still in train); 'row' when it has only one."""
    sizes = {
        f"{key}\x00{rel}": size
        for key, entries in files.items()
        if split.keys.get(key) == "train"
        for rel, size, g in entries
        if g == group and size > 0
    }
    if len(sizes) < 2:
        return "row" if sizes else "none"
    taken = choose(sizes, seed, target)
    if not taken:  # every file is far bigger than the target: the smallest one
        taken = [min(sizes, key=lambda k: (sizes[k], rank(seed, k)))]
    if len(taken) == len(sizes):
        taken = taken[:-1]
    for name in taken:
        key, rel = name.split("\x00", 1)
        split.eval_files.add((key, rel))
    return "file"


def row_choice(seed: int, stage: int, tokens: list[int], fraction: float) -> set[int]:
    """Indices of rows to hold out when a stage has too few files for a file split:
    about `fraction` of the tokens, at least one row, never all of them."""
    if len(tokens) < 2:
        return set()
    weights = {f"{stage}\x00{i}": n for i, n in enumerate(tokens)}
    taken = choose(weights, seed, fraction * sum(tokens))
    if not taken:
        taken = [min(weights, key=lambda k: (weights[k], rank(seed, k)))]
    if len(taken) == len(tokens):
        taken = taken[:-1]
    return {int(k.split("\x00", 1)[1]) for k in taken}


def sample(seed: int, *parts: str) -> float:
    """A deterministic number in [0, 1) for a sampling decision about `parts`."""
    h = hashlib.sha256("\x00".join((str(seed), *parts)).encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64
