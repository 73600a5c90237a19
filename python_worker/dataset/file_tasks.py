"""The work done in the pool's processes: per-file scanning and per-file row building.

Each process is set up once by `init` (config, eval index, tokenizer) and then
runs tasks that name files by path, so only paths go out and only small results
(hashes, signatures, serialized rows) come back. Everything here is a pure
function of (file bytes, config, seed): the result does not depend on which
process ran it or when, which is what makes parallel builds byte-identical.

Files are read twice, once to scan (clean, scrub, hash, check contamination) and
once to build rows after the coordinator has decided what to keep. Keeping the
cleaned text between the passes would cost memory proportional to the corpus.
"""

from __future__ import annotations

import json
import random
import re
import threading
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from python_worker.dataset import books, dedup, fim_rows, lexer, mining, split
from python_worker.dataset.clean import Cleaner, language_of
from python_worker.dataset.config import DatasetConfig, config_from_dict
from python_worker.dataset.decontam import DecontamIndex, Hit
from python_worker.dataset.elixir_ast import Parsed
from python_worker.dataset.scrub import Scrubber
from python_worker.dataset.tokens import TokenCounter

_MODULE = re.compile(r"^\s*defmodule\s+([A-Z][\w.]*)", re.MULTILINE)
_COMMENT = {"elixir": "#", "erlang": "%", "python": "#"}


@dataclass
class State:
    config: DatasetConfig
    seed: int
    cleaner: Cleaner
    scrubber: Scrubber
    signer: dedup.Signer | None
    decontam: DecontamIndex | None
    counter: TokenCounter


# Per thread: a pool process runs its tasks on the thread its initializer ran on,
# and inline builds (one worker) run on their own build thread, so two builds in
# one process (two RPCs) never share state.
_local = threading.local()


def init(payload: dict[str, Any]) -> None:
    """Pool initializer (and the inline path's setup)."""
    config = config_from_dict(payload["config"])
    index = payload.get("decontam")
    _local.state = State(
        config=config,
        seed=payload["seed"],
        cleaner=Cleaner(config.clean),
        scrubber=Scrubber(config.scrub),
        signer=(
            dedup.Signer(config.dedup.shingle, payload["permutations"])
            if payload.get("permutations") is not None
            else None
        ),
        decontam=DecontamIndex(**index) if index else None,
        counter=TokenCounter(payload["tokenizer"]),
    )


def state() -> State:
    st = getattr(_local, "state", None)
    assert st is not None, "worker.init was not called on this thread"
    return st


def dumps(row: dict[str, Any]) -> str:
    """One JSONL line; sorted keys and no ASCII escaping, so output is canonical."""
    return json.dumps(row, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


# ---------------------------------------------------------------------------
# Reading + cleaning (shared by both passes and by replay)
# ---------------------------------------------------------------------------


def load(path: Path, rel: str, size: int, replay: bool = False) -> tuple[str | None, str | None, Counter[str]]:
    """(clean scrubbed text, None, secrets) or (None, drop reason, {})."""
    st = state()
    reason = st.cleaner.check_path(rel, size, replay)
    if reason:
        return None, reason, Counter()
    try:
        data = path.read_bytes()
    except OSError:
        return None, "unreadable", Counter()
    if len(data) > st.config.clean.max_file_bytes:
        return None, "too_large", Counter()
    text, reason = st.cleaner.decode(data)
    if text is None:
        return None, reason, Counter()
    if language_of(rel) == "markdown":
        reason = _check_markdown(text)
    else:
        reason = st.cleaner.check_text(text)
    if reason:
        return None, reason, Counter()
    text, found = st.scrubber.scrub(text)
    return text, None, found


def _check_markdown(text: str) -> str | None:
    """Prose has long wrapped lines and few symbols: only the empty/tiny checks apply,
    plus a looser line limit (a paragraph per line is normal Markdown)."""
    st = state()
    stripped = len(text.split())
    if stripped == 0:
        return "empty"
    if len("".join(text.split())) < st.config.clean.min_chars:
        return "tiny"
    if max(map(len, text.split("\n"))) > 20 * st.config.clean.max_line_chars:
        return "long_lines"
    return None


# ---------------------------------------------------------------------------
# Pass 1: scan
# ---------------------------------------------------------------------------


@dataclass
class ScanResult:
    file_id: int
    size: int
    reason: str | None
    secrets: dict[str, int]
    exact: bytes | None = None
    signature: bytes | None = None
    contamination: list[Hit] | None = None
    modules: list[str] | None = None


def scan(task: tuple[str, list[tuple[int, str, int]]]) -> list[ScanResult]:
    root, files = task
    st = state()
    out: list[ScanResult] = []
    for file_id, rel, size in files:
        text, reason, found = load(Path(root) / rel, rel, size)
        if text is None:
            out.append(ScanResult(file_id, size, reason, {}))
            continue
        out.append(_scan_text(st, file_id, size, text, dict(found), rel))
    return out


def _scan_text(st: State, file_id: int, size: int, text: str, found: dict[str, int], rel: str) -> ScanResult:
    toks = lexer.tokens(text)
    hashes = lexer.token_hashes(toks)
    contamination = st.decontam.check(text, toks, hashes) if st.decontam is not None else []
    if contamination:
        return ScanResult(file_id, size, "contaminated", found, contamination=contamination)
    signature = None
    if st.signer is not None:
        grams = lexer.ngram_hashes(hashes, st.signer.shingle)
        signature = st.signer.sign_hashes(np.unique((grams >> np.uint64(32)).astype(np.uint32)))
    modules = _MODULE.findall(text) if language_of(rel) == "elixir" else []
    return ScanResult(
        file_id,
        size,
        None,
        found,
        exact=dedup.exact_key(text) if st.config.dedup.exact else None,
        signature=signature,
        modules=modules,
    )


# ---------------------------------------------------------------------------
# Pass 2: rows
# ---------------------------------------------------------------------------


@dataclass
class FileJob:
    rel: str
    size: int
    tested: tuple[str, int] | None = None  # (rel, size) of the module a test file tests


@dataclass
class RowBatch:
    """Rows of one task: per stage, serialized lines (stage 3: dicts) and token counts."""

    lines: dict[int, list[Any]]
    tokens: dict[int, list[int]]
    paths: dict[int, list[str]]  # the file each row came from (the split may be by file)
    kinds: Counter[str]
    errors: list[str]
    changed: int = 0


def build_rows(task: tuple[str, str, str, list[FileJob]]) -> RowBatch:
    root, label, license_, jobs = task
    st = state()
    cfg = st.config
    batch = RowBatch(
        lines={1: [], 2: [], 3: []},
        tokens={1: [], 2: [], 3: []},
        paths={1: [], 2: [], 3: []},
        kinds=Counter(),
        errors=[],
    )
    pending: dict[int, list[dict[str, Any]]] = {1: [], 2: [], 3: []}
    for job in jobs:
        text, _reason, _ = load(Path(root) / job.rel, job.rel, job.size)
        if text is None:
            batch.changed += 1  # the file changed on disk since the scan
            continue
        lang = language_of(job.rel) or ""
        base = {"source": label, "path": job.rel, "license": license_, "language": lang}
        try:
            if lang == "markdown":
                if cfg.stage3.enabled:
                    pending[3].extend(books.rows(text, job.rel, cfg.stage3, base))
                continue
            _code_rows(st, root, label, job, text, lang, base, pending)
        except Exception as e:  # noqa: BLE001 -- one odd file must not sink a 1 GB build
            batch.errors.append(f"{label} {job.rel}: {type(e).__name__}: {e}")
    for stage, rows in pending.items():
        batch.tokens[stage] = st.counter.count([_row_text(r) for r in rows])
        batch.lines[stage] = rows if stage == 3 else [dumps(r) for r in rows]
        batch.paths[stage] = [r["path"] for r in rows]
        batch.kinds.update(f"stage{stage}.{r['kind']}" for r in rows)
    return batch


def _code_rows(
    st: State,
    root: str,
    label: str,
    job: FileJob,
    text: str,
    lang: str,
    base: dict[str, Any],
    pending: dict[int, list[dict[str, Any]]],
) -> None:
    cfg = st.config
    if cfg.stage1.enabled and split.sample(st.seed, "stage1", label, job.rel) < cfg.stage1.mix.get(lang, 1.0):
        pending[1].append(
            {
                **base,
                "kind": "file",
                "text": _with_header(text, job.rel, lang, cfg.stage1.path_header),
            }
        )
    if not cfg.stage2.enabled:
        return
    parsed = Parsed(text) if lang == "elixir" else None
    s2 = cfg.stage2
    if (
        lang in s2.fim_languages
        and len(text) <= s2.max_fim_file_chars
        and split.sample(st.seed, "fim", label, job.rel) < s2.fim_rate
    ):
        rng = random.Random(f"{st.seed}:fim:{label}:{job.rel}")
        pending[2].extend(fim_rows.fim_rows(text, lang, parsed, s2, rng, base))
    if s2.pairs and parsed is not None and s2.max_pairs_per_file > 0:
        tested = None
        if job.tested is not None:
            t_rel, t_size = job.tested
            t_text, _, _ = load(Path(root) / t_rel, t_rel, t_size)
            if t_text is not None:
                tested = (t_text, Parsed(t_text))
        rng = random.Random(f"{st.seed}:pairs:{label}:{job.rel}")
        pending[2].extend(mining.mine(text, parsed, s2, rng, base, tested))


def _with_header(text: str, rel: str, lang: str, header: bool) -> str:
    return f"{_COMMENT.get(lang, '#')} {rel}\n{text}" if header else text


def _row_text(row: dict[str, Any]) -> str:
    if "messages" in row:
        return "\n".join(m["content"] for m in row["messages"])
    return row["text"]


# ---------------------------------------------------------------------------
# Replay
# ---------------------------------------------------------------------------


@dataclass
class ReplayResult:
    rel: str
    reason: str | None
    secrets: dict[str, int]
    text_row: str | None = None
    text_tokens: int = 0
    fim_row: str | None = None
    fim_tokens: int = 0


def replay(task: tuple[str, str, list[tuple[str, int]]]) -> list[ReplayResult]:
    """Both candidate rows (a text document and a FIM row) per replay file; the
    coordinator decides which stage, if any, takes the file."""
    root, prefix, files = task
    st = state()
    out: list[ReplayResult] = []
    for rel, size in files:
        text, reason, found = load(Path(root) / rel, rel, size, replay=True)
        if text is None:
            out.append(ReplayResult(rel, reason, {}))
            continue
        if st.decontam is not None and st.decontam.check(text):
            out.append(ReplayResult(rel, "contaminated", dict(found)))
            continue
        path = f"{prefix}/{rel}"
        base = {
            "source": "replay",
            "path": path,
            "license": "PSF-2.0",
            "language": "python",
        }
        text_row = {
            **base,
            "kind": "file",
            "text": _with_header(text, path, "python", st.config.stage1.path_header),
        }
        rng = random.Random(f"{st.seed}:replay:{path}")
        fims = (
            fim_rows.fim_rows(text, "python", None, replace(st.config.stage2, fim_rows_per_file=1), rng, base)
            if len(text) <= st.config.stage2.max_fim_file_chars
            else []
        )
        texts = [text_row["text"]] + [f["text"] for f in fims[:1]]
        counts = st.counter.count(texts)
        out.append(
            ReplayResult(
                rel,
                None,
                dict(found),
                text_row=dumps(text_row),
                text_tokens=counts[0],
                fim_row=dumps(fims[0]) if fims else None,
                fim_tokens=counts[1] if fims else 0,
            )
        )
    return out


# ---------------------------------------------------------------------------
# The near-dedup step alone (bench/dataset_build.py measures it)
# ---------------------------------------------------------------------------


def sign_paths(paths: list[str]) -> list[tuple[int, bytes | None]]:
    """(size, MinHash signature) per file, with no cleaning: the signing half of
    near-dedup, as the scan pass runs it."""
    st = state()
    assert st.signer is not None, "dedup.near is off"
    out: list[tuple[int, bytes | None]] = []
    for p in paths:
        data = Path(p).read_bytes()
        out.append((len(data), st.signer.sign(data.decode("utf-8", "replace"))))
    return out
