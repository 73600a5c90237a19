"""Conversation logs as stage-2 SFT rows (`stage2.conversation_logs` in the builder's config).

The logs are read by python_worker.rag.logs, the parser `Ingest` uses, so the
two agree on formats, on what counts as tool-call noise (dropped there) and on
which lines are bad (skipped and counted). Each user → assistant exchange whose
answer holds Elixir code becomes one chat row (system prompt of stage 2, user,
assistant) of kind `conversation`. The rows go through what code goes through:
secret scrubbing (both messages), decontamination against the eval sets, and
exact and near dedup among themselves; the split is by exchange (seeded, at
split.eval_fraction). The counts land in manifest.json (`conversations`) and
REPORT.md.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from python_worker.dataset import dedup, split
from python_worker.dataset.config import DatasetConfig
from python_worker.dataset.decontam import DecontamIndex, Hit
from python_worker.dataset.errors import InvalidRequest
from python_worker.dataset.mining import chat
from python_worker.dataset.scrub import Scrubber
from python_worker.rag import logs

SOURCE = "conversations"
FIELD = "stage2.conversation_logs"

_FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)```", re.DOTALL)
_ELIXIR_TAGS = frozenset({"elixir", "ex", "exs", "iex", "heex"})
# An untagged block is Elixir when it reads like it.
_ELIXIR_SIGNS = re.compile(
    r"\bdefmodule\b|\bdefp?\s+\w+.*\bdo\b|\|>|\bfn\s.*->|\bend\b\s*$|%\{|\bIO\.puts\b", re.MULTILINE
)


@dataclass
class ConversationStats:
    files: int = 0
    exchanges: int = 0
    rows: int = 0
    skipped_lines: int = 0
    drops: Counter = field(default_factory=Counter)
    # The first skipped lines, as PATH:LINE: reason (all are counted).
    skipped: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "exchanges": self.exchanges,
            "rows": self.rows,
            "skipped_lines": self.skipped_lines,
            "skipped_first": self.skipped,
            "drops": dict(sorted(self.drops.items())),
        }


@dataclass
class Row:
    line: dict[str, Any]
    where: str  # "train" or "eval"
    text: str  # what the token counter counts


def log_files(paths: list[str]) -> list[Path]:
    """The log files the config names (files, or directories searched recursively
    for *.jsonl logs and Continue *.json sessions), or InvalidRequest."""
    files: list[Path] = []
    for index, raw in enumerate(paths):
        path = Path(raw).expanduser()
        if path.is_file():
            files.append(path.resolve())
        elif path.is_dir():
            found = sorted(p.resolve() for p in path.rglob("*") if p.is_file() and logs.is_log_file(p))
            if not found:
                raise InvalidRequest(
                    f"{FIELD}[{index}]: directory {raw} holds no conversation logs (*.jsonl, or Continue *.json sessions)"
                )
            files.extend(found)
        else:
            raise InvalidRequest(f"{FIELD}[{index}]: no such file or directory: {raw}")
    return list(dict.fromkeys(files))


def elixir_code(text: str) -> bool:
    """Whether an answer holds Elixir code: a fenced block tagged elixir (or ex/exs/iex), or an untagged one that reads as Elixir."""
    for match in _FENCE.finditer(text):
        tag, body = match.group(1).lower(), match.group(2)
        if tag in _ELIXIR_TAGS or (not tag and _ELIXIR_SIGNS.search(body)):
            return True
    return False


def rows(
    files: list[Path],
    cfg: DatasetConfig,
    seed: int,
    index: DecontamIndex | None,
    secrets: Counter,
    contamination: dict[str, Counter],
    contaminated: list[dict[str, str]],
) -> tuple[list[Row], ConversationStats]:
    """The SFT rows of the logs' exchanges, in file and line order, with what was dropped and why."""
    stats = ConversationStats()
    scrubber = Scrubber(cfg.scrub)
    seen: set[bytes] = set()
    near = (
        dedup.NearDupIndex(cfg.dedup.threshold, cfg.dedup.num_perm, cfg.dedup.minhash_seed) if cfg.dedup.near else None
    )
    signer = (
        dedup.Signer(cfg.dedup.shingle, dedup.permutations(cfg.dedup.num_perm, cfg.dedup.minhash_seed))
        if cfg.dedup.near
        else None
    )
    out: list[Row] = []
    for path in files:
        parsed = logs.parse_log(path)
        stats.files += 1
        stats.skipped_lines += len(parsed.skipped)
        for bad in parsed.skipped:
            if len(stats.skipped) < 20:
                stats.skipped.append(f"{path}:{bad.line}: {bad.reason}")
        for exchange in parsed.exchanges:
            stats.exchanges += 1
            if not elixir_code(exchange.assistant):
                stats.drops["no_elixir_code"] += 1
                continue
            if len(exchange.assistant) > cfg.stage2.max_answer_chars:
                stats.drops["too_long"] += 1
                continue
            user, found_user = scrubber.scrub(exchange.user)
            answer, found_answer = scrubber.scrub(exchange.assistant)
            secrets.update(found_user)
            secrets.update(found_answer)
            text = f"{user}\n{answer}"
            hits: list[Hit] = index.check(text) if index is not None else []
            if hits:
                stats.drops["contaminated"] += 1
                for hit in hits:
                    contamination[hit.eval_set][hit.kind] += 1
                    contamination[hit.eval_set]["files"] += 1
                    contaminated.append(
                        {
                            "source": SOURCE,
                            "path": exchange.source,
                            "eval_set": hit.eval_set,
                            "kind": hit.kind,
                            "problem": hit.problem,
                            "match": hit.match,
                        }
                    )
                continue
            if cfg.dedup.exact:
                key = dedup.exact_key(text)
                if key in seen:
                    stats.drops["exact_duplicate"] += 1
                    continue
                seen.add(key)
            if near is not None and signer is not None:
                signature = signer.sign(text)
                if signature is not None and near.seen(signature):
                    stats.drops["near_duplicate"] += 1
                    continue
            where = (
                "eval"
                if split.sample(seed, "conversation", SOURCE, exchange.source) < cfg.split.eval_fraction
                else "train"
            )
            line = {
                "source": SOURCE,
                "path": exchange.source,
                "license": "",
                "language": "elixir",
                "kind": "conversation",
                "messages": chat(cfg.stage2.system_prompt, user, answer),
            }
            out.append(Row(line, where, text))
            stats.rows += 1
    return out, stats
