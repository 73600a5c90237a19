"""Decontamination: drop any file that shares a long token n-gram with an eval problem.

The index holds the hashed n-grams (see lexer.py) of the configured fields of
every eval row, with a bit per eval set and a flag for n-grams that came from a
reference-solution field, so a hit reports *which* set it hit and whether the
file contains that set's solution.

Two kinds of eval n-grams are left out because they would match ordinary code:
- template text shared by many problems (MultiPL-E wraps every problem in
  `defmodule HumanEvalTest do use ExUnit.Case, async: true`);
- n-grams with fewer than two identifiers other than keywords, such as
  `do assert [1, 2, 3, 4`.
A solution shorter than the n-gram is not checked; at that length it would
match common idioms like `Enum.sum(list)` in unrelated code.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from python_worker.curriculum import lexer
from python_worker.curriculum.errors import InvalidRequest
from python_worker.jsonl import read_objects

MAX_EVAL_SETS = 64  # one bit each in a uint64 mask
_BITMAP_BITS = 22
_BITMAP_MASK = np.uint64((1 << _BITMAP_BITS) - 1)
MIN_WORD_TOKENS = 2
# Keywords and test words every Elixir file uses; they do not make an n-gram specific.
_COMMON = frozenset(
    [
        "do",
        "end",
        "fn",
        "def",
        "defp",
        "defmodule",
        "defmacro",
        "when",
        "and",
        "or",
        "not",
        "in",
        "case",
        "cond",
        "if",
        "else",
        "unless",
        "with",
        "true",
        "false",
        "nil",
        "use",
        "import",
        "alias",
        "require",
        "assert",
        "refute",
        "test",
        "describe",
        "setup",
    ]
)


@dataclass(frozen=True)
class EvalFile:
    name: str
    path: Path
    rows: int


@dataclass
class DecontamIndex:
    """Sorted n-gram hashes with, per hash, a bitmask of eval sets and of solution hits."""

    ngram: int
    names: list[str]
    keys: np.ndarray  # uint64, sorted, unique
    set_mask: np.ndarray  # uint64
    solution_mask: np.ndarray  # uint64

    def __post_init__(self) -> None:
        # A bitmap over the low hash bits answers "certainly not an eval n-gram" for
        # almost every n-gram of a file, so only the few others need a binary search.
        self._bitmap = np.zeros(1 << _BITMAP_BITS, dtype=bool)
        self._bitmap[self.keys & _BITMAP_MASK] = True

    def check(self, gram_hashes: np.ndarray) -> list[tuple[str, str]]:
        """The (eval set, 'ngram' | 'solution') pairs a file's n-grams hit."""
        if len(self.keys) == 0 or len(gram_hashes) == 0:
            return []
        gram_hashes = gram_hashes[self._bitmap[gram_hashes & _BITMAP_MASK]]
        if len(gram_hashes) == 0:
            return []
        pos = np.searchsorted(self.keys, gram_hashes)
        pos[pos == len(self.keys)] = 0
        hit = self.keys[pos] == gram_hashes
        if not hit.any():
            return []
        idx = pos[hit]
        sets = int(np.bitwise_or.reduce(self.set_mask[idx]))
        sols = int(np.bitwise_or.reduce(self.solution_mask[idx]))
        return [(name, "solution" if sols >> i & 1 else "ngram") for i, name in enumerate(self.names) if sets >> i & 1]


def eval_files(eval_dir: Path | None, extra: Iterable[str]) -> list[EvalFile]:
    """Every *.jsonl in eval_dir plus the extra files, checked to exist and parse."""
    paths: list[Path] = []
    if eval_dir is not None:
        if not eval_dir.is_dir():
            raise InvalidRequest(f"eval directory {eval_dir} does not exist")
        paths.extend(sorted(eval_dir.glob("*.jsonl")))
    for raw in extra:
        p = Path(raw)
        if not p.is_file():
            raise InvalidRequest(f"eval file {p} does not exist")
        if p.resolve() not in {q.resolve() for q in paths}:
            paths.append(p)
    if len(paths) > MAX_EVAL_SETS:
        raise InvalidRequest(f"at most {MAX_EVAL_SETS} eval files are supported, got {len(paths)}")
    out: list[EvalFile] = []
    used: set[str] = set()
    for p in paths:
        name = p.stem if p.stem not in used else str(p)
        used.add(name)
        out.append(EvalFile(name=name, path=p, rows=sum(1 for _ in _rows(p))))
    return out


def _rows(path: Path) -> Iterable[dict]:
    def bad_line(lineno: int, exc: json.JSONDecodeError | None) -> InvalidRequest:
        problem = f"not valid JSON: {exc}" if exc is not None else "expected a JSON object"
        return InvalidRequest(f"eval file {path}, line {lineno}: {problem}")

    for _, row in read_objects(path, bad_line):
        yield row


def _field_text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(v for v in value if isinstance(v, str))
    return ""


def build_index(
    files: list[EvalFile],
    ngram: int,
    fields: list[str],
    solution_fields: list[str],
    boilerplate_problems: int,
) -> DecontamIndex:
    names = [f.name for f in files]
    # Per problem: its distinct n-grams and whether each came from a solution field.
    per_problem: list[tuple[int, np.ndarray, np.ndarray]] = []
    for set_id, f in enumerate(files):
        for row in _rows(f.path):
            grams: list[np.ndarray] = []
            sol: list[np.ndarray] = []
            for name in fields:
                toks = lexer.tokens(_field_text(row.get(name)))
                g = lexer.ngram_hashes(lexer.token_hashes(toks), ngram)
                if len(g) == 0:
                    continue
                g = g[_enough_words(toks, ngram)]
                grams.append(g)
                sol.append(np.full(len(g), name in solution_fields))
            if grams:
                g_all = np.concatenate(grams)
                s_all = np.concatenate(sol)
                per_problem.append((set_id, g_all, s_all))
    if not per_problem:
        empty = np.empty(0, dtype=np.uint64)
        return DecontamIndex(ngram, names, empty, empty.copy(), empty.copy())

    # How many problems each n-gram occurs in, to drop template text.
    uniq_per_problem = [np.unique(g) for _, g, _ in per_problem]
    all_uniq, counts = np.unique(np.concatenate(uniq_per_problem), return_counts=True)
    boilerplate = all_uniq[counts >= boilerplate_problems]

    keys = np.concatenate([g for _, g, _ in per_problem])
    set_bits = np.concatenate([np.full(len(g), 1 << set_id, dtype=np.uint64) for set_id, g, _ in per_problem])
    sol_bits = np.concatenate([np.where(s, np.uint64(1 << set_id), np.uint64(0)) for set_id, _, s in per_problem])
    keep = ~np.isin(keys, boilerplate)
    keys, set_bits, sol_bits = keys[keep], set_bits[keep], sol_bits[keep]
    order = np.argsort(keys, kind="stable")
    keys, set_bits, sol_bits = keys[order], set_bits[order], sol_bits[order]
    uniq, starts = np.unique(keys, return_index=True)
    return DecontamIndex(
        ngram=ngram,
        names=names,
        keys=uniq,
        set_mask=np.bitwise_or.reduceat(set_bits, starts) if len(keys) else set_bits,
        solution_mask=np.bitwise_or.reduceat(sol_bits, starts) if len(keys) else sol_bits,
    )


def _enough_words(toks: list[str], n: int) -> np.ndarray:
    """Mask of the n-gram windows that hold at least MIN_WORD_TOKENS identifiers."""
    is_word = np.fromiter(
        ((t[0].isalpha() or t[0] == "_") and t not in _COMMON for t in toks),
        dtype=np.int64,
        count=len(toks),
    )
    csum = np.concatenate([[0], np.cumsum(is_word)])
    return (csum[n:] - csum[:-n]) >= MIN_WORD_TOKENS
