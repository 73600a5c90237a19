"""Decontamination: drop any file that contains an eval problem's prose or code.

Two matches, as the BigCode decontamination of The Stack did (prompts matched as
text, solutions as code):

- text: a prompt's natural-language part (its comment lines, without the `>>>`
  examples) is lower-cased into words; a file whose words contain a window of
  `text_ngram` of them in a row (or the whole prose when it is shorter, but at
  least MIN_TEXT_WORDS words) is contaminated. Layout, comment markers and
  punctuation do not matter, so a prompt pasted into a doc string still matches.
- code: the code fields (tests, solutions, the prompt's code lines) give n-grams
  of `ngram` code tokens (see lexer.py); a file sharing one is contaminated.

Eval n-grams that would match ordinary code are left out of the index:
- template text shared by many problems (MultiPL-E wraps every problem in
  `defmodule HumanEvalTest do use ExUnit.Case, async: true`);
- code n-grams with fewer than MIN_WORD_TOKENS identifiers outside string
  literals, keywords and atoms: literal runs such as `[1, 2, 3, 4, 5, 6` or
  `%{"a" => 1, "b" => 2}` occur in every doc example and test suite.
A code field shorter than the n-gram is not checked; at that length it would
match common idioms like `Enum.sum(list)` in unrelated code.

Each hit names the eval set, the kind (solution > text > ngram), the problem and
the matched words, so the manifest can say why every dropped file was dropped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from python_worker.dataset import lexer
from python_worker.dataset.errors import InvalidRequest
from python_worker.jsonl import read_objects

MAX_EVAL_SETS = 64  # one bit each in a uint64 mask
_BITMAP_BITS = 22
_BITMAP_MASK = np.uint64((1 << _BITMAP_BITS) - 1)
MIN_WORD_TOKENS = 2
# Prose shorter than this ("Return length of given string") reads like any doc line.
MIN_TEXT_WORDS = 8
_WORD = re.compile(r"[a-z0-9]+")
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
KIND_RANK = {"ngram": 0, "text": 1, "solution": 2}


@dataclass(frozen=True)
class EvalFile:
    name: str
    path: Path
    rows: int


@dataclass(frozen=True)
class Hit:
    """Why a file is contaminated by one eval set."""

    eval_set: str
    kind: str  # "solution", "text" or "ngram"
    problem: str
    match: str  # the matched code tokens or words, space-separated


@dataclass
class DecontamIndex:
    """Sorted code n-gram and prose-window hashes; per hash the eval sets (bitmask),
    whether a solution field holds it, and the first problem it came from.

    Plain arrays and lists only, so `dataclasses.asdict` ships it to the workers."""

    ngram: int
    text_ngram: int
    names: list[str]
    problems: list[str]
    keys: np.ndarray  # uint64, sorted, unique
    set_mask: np.ndarray  # uint64
    solution_mask: np.ndarray  # uint64
    problem: np.ndarray  # int64 index into problems
    text_lengths: list[int] = field(default_factory=list)  # window sizes in text_keys
    text_keys: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.uint64))
    text_set_mask: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.uint64))
    text_problem: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))

    def __post_init__(self) -> None:
        # A bitmap over the low hash bits answers "certainly not an eval n-gram" for
        # almost every n-gram of a file, so only the few others need a binary search.
        self._bitmap = np.zeros(1 << _BITMAP_BITS, dtype=bool)
        self._bitmap[self.keys & _BITMAP_MASK] = True
        self._text_bitmap = np.zeros(1 << _BITMAP_BITS, dtype=bool)
        self._text_bitmap[self.text_keys & _BITMAP_MASK] = True

    def check(self, text: str, toks: list[str] | None = None, hashes: np.ndarray | None = None) -> list[Hit]:
        """One Hit per eval set the file matches (the strongest kind), in set order.

        `toks`/`hashes` are the file's code tokens and their hashes when the caller
        already has them (the scan computes them for near-dedup too)."""
        best: dict[int, Hit] = {}
        if len(self.keys):
            if toks is None or hashes is None:
                toks = lexer.tokens(text)
                hashes = lexer.token_hashes(toks)
            grams = lexer.ngram_hashes(hashes, self.ngram)
            for pos, idx in _lookup(grams, self.keys, self._bitmap):
                sets, sols = int(self.set_mask[idx]), int(self.solution_mask[idx])
                kind = "solution" if sols else "ngram"
                match = " ".join(toks[pos : pos + self.ngram])
                self._keep(best, sets, kind, int(self.problem[idx]), match)
        if len(self.text_keys):
            words = _WORD.findall(text.lower())
            word_hashes = lexer.token_hashes(words)
            for n in self.text_lengths:
                grams = lexer.ngram_hashes(word_hashes, n)
                for pos, idx in _lookup(grams, self.text_keys, self._text_bitmap):
                    match = " ".join(words[pos : pos + n])
                    self._keep(best, int(self.text_set_mask[idx]), "text", int(self.text_problem[idx]), match)
        return [best[i] for i in sorted(best)]

    def _keep(self, best: dict[int, Hit], sets: int, kind: str, problem: int, match: str) -> None:
        for i, name in enumerate(self.names):
            if sets >> i & 1 and (i not in best or KIND_RANK[kind] > KIND_RANK[best[i].kind]):
                best[i] = Hit(name, kind, self.problems[problem], match)


def _lookup(grams: np.ndarray, keys: np.ndarray, bitmap: np.ndarray) -> list[tuple[int, int]]:
    """(position in grams, index in keys) of every gram that is a key."""
    if len(keys) == 0 or len(grams) == 0:
        return []
    positions = np.flatnonzero(bitmap[grams & _BITMAP_MASK])
    if len(positions) == 0:
        return []
    candidates = grams[positions]
    idx = np.searchsorted(keys, candidates)
    idx[idx == len(keys)] = 0
    hit = keys[idx] == candidates
    return list(zip(positions[hit].tolist(), idx[hit].tolist(), strict=True))


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


def split_prose(text: str) -> tuple[str, str]:
    """(prose, code) of a prompt: comment lines are prose, except `>>>` examples
    and the result line after each; every other line is code."""
    prose: list[str] = []
    code: list[str] = []
    after_example = False
    for line in text.split("\n"):
        stripped = line.strip()
        if not stripped.startswith(("#", "%")):
            code.append(line)
            after_example = False
        elif ">>>" in stripped or "iex>" in stripped:
            after_example = True
        elif after_example:
            after_example = False
        else:
            prose.append(stripped.lstrip("#% "))
    return "\n".join(prose), "\n".join(code)


@dataclass
class _Grams:
    """The n-gram hashes of one problem, of one kind (code or text)."""

    set_id: int
    problem: int
    hashes: np.ndarray
    solution: np.ndarray  # bool per hash


def build_index(
    files: list[EvalFile],
    ngram: int,
    fields: list[str],
    solution_fields: list[str],
    boilerplate_problems: int,
    text_fields: Iterable[str] = ("prompt",),
    text_ngram: int = 12,
) -> DecontamIndex:
    names = [f.name for f in files]
    text_fields = list(text_fields)
    problems: list[str] = []
    code: list[_Grams] = []
    prose: list[_Grams] = []
    lengths: set[int] = set()
    for set_id, f in enumerate(files):
        for lineno, row in enumerate(_rows(f.path), 1):
            pid = len(problems)
            problems.append(f"{f.name}/{row.get('name') or row.get('task_id') or f'line {lineno}'}")
            code_parts: list[tuple[np.ndarray, bool]] = []
            text_parts: list[np.ndarray] = []
            for name in dict.fromkeys([*fields, *text_fields]):
                value = _field_text(row.get(name))
                if name in text_fields:
                    words_text, value = split_prose(value)
                    words = _WORD.findall(words_text.lower())
                    n = min(text_ngram, len(words))
                    if n >= MIN_TEXT_WORDS:
                        lengths.add(n)
                        text_parts.append(lexer.ngram_hashes(lexer.token_hashes(words), n))
                if name not in fields:
                    continue
                toks = lexer.tokens(value)
                g = lexer.ngram_hashes(lexer.token_hashes(toks), ngram)
                if len(g):
                    code_parts.append((g[_enough_words(toks, ngram)], name in solution_fields))
            if code_parts:
                hashes = np.concatenate([g for g, _ in code_parts])
                sol = np.concatenate([np.full(len(g), s) for g, s in code_parts])
                code.append(_Grams(set_id, pid, hashes, sol))
            if text_parts:
                hashes = np.concatenate(text_parts)
                prose.append(_Grams(set_id, pid, hashes, np.zeros(len(hashes), dtype=bool)))
    keys, set_mask, sol_mask, problem = _table(code, boilerplate_problems)
    text_keys, text_set_mask, _, text_problem = _table(prose, boilerplate_problems)
    return DecontamIndex(
        ngram=ngram,
        text_ngram=text_ngram,
        names=names,
        problems=problems,
        keys=keys,
        set_mask=set_mask,
        solution_mask=sol_mask,
        problem=problem,
        text_lengths=sorted(lengths),
        text_keys=text_keys,
        text_set_mask=text_set_mask,
        text_problem=text_problem,
    )


def _table(per_problem: list[_Grams], boilerplate_problems: int) -> tuple[np.ndarray, ...]:
    """Sorted unique hashes with OR-ed set and solution masks and the first problem,
    leaving out hashes shared by boilerplate_problems or more problems."""
    if not per_problem:
        empty = np.empty(0, dtype=np.uint64)
        return empty, empty.copy(), empty.copy(), np.empty(0, dtype=np.int64)
    uniq_per_problem = [np.unique(p.hashes) for p in per_problem]
    all_uniq, counts = np.unique(np.concatenate(uniq_per_problem), return_counts=True)
    boilerplate = all_uniq[counts >= boilerplate_problems]

    keys = np.concatenate([p.hashes for p in per_problem])
    set_bits = np.concatenate([np.full(len(p.hashes), 1 << p.set_id, dtype=np.uint64) for p in per_problem])
    sol_bits = np.concatenate(
        [np.where(p.solution, np.uint64(1 << p.set_id), np.uint64(0)) for p in per_problem]
    ).astype(np.uint64)
    owner = np.concatenate([np.full(len(p.hashes), p.problem, dtype=np.int64) for p in per_problem])
    keep = ~np.isin(keys, boilerplate)
    keys, set_bits, sol_bits, owner = keys[keep], set_bits[keep], sol_bits[keep], owner[keep]
    if len(keys) == 0:
        empty = np.empty(0, dtype=np.uint64)
        return empty, empty.copy(), empty.copy(), np.empty(0, dtype=np.int64)
    order = np.argsort(keys, kind="stable")  # stable: the first problem stays first
    keys, set_bits, sol_bits, owner = keys[order], set_bits[order], sol_bits[order], owner[order]
    uniq, starts = np.unique(keys, return_index=True)
    return (
        uniq,
        np.bitwise_or.reduceat(set_bits, starts),
        np.bitwise_or.reduceat(sol_bits, starts),
        owner[starts],
    )


def _enough_words(toks: list[str], n: int) -> np.ndarray:
    """Mask of the n-gram windows that hold at least MIN_WORD_TOKENS identifiers
    outside string literals and atoms: literal runs never decide a match."""
    is_word = np.fromiter(_identifier_flags(toks), dtype=np.int64, count=len(toks))
    csum = np.concatenate([[0], np.cumsum(is_word)])
    return (csum[n:] - csum[:-n]) >= MIN_WORD_TOKENS


def _identifier_flags(toks: list[str]) -> Iterable[bool]:
    """Per token: an identifier that is code (not a keyword, not inside a string
    or charlist, not an atom). Quotes toggle the string state; an escaped quote
    (the lexer gives `\\` then `"`) does not."""
    quote: str | None = None
    prev = ""
    for t in toks:
        if quote is not None:
            if t == quote and prev != "\\":
                quote = None
            yield False
        elif t in ('"', "'"):
            quote = t
            yield False
        else:
            yield (t[0].isalpha() or t[0] == "_") and t not in _COMMON and prev != ":"
        prev = t
