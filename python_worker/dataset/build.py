"""Build the three-stage training dataset from scraped corpora.

    .venv/bin/python -m python_worker.dataset --input data/raw/hex \\
        --input data/raw/github --out data/datasets/NAME [--config FILE] [--seed N]

`build(request, progress, cancel)` is the one entry point; the CLI (__main__.py)
and the BuildDataset RPC (rpc.py) are thin layers over it. It runs in phases:

1. validate  inputs, manifests, config, eval sets, tokenizer: an InvalidRequest
             names the problem before any work starts (`prepare`);
2. scan      every file, in dedup-preference order, on all cores: clean, scrub
             secrets, check contamination, hash; the coordinator drops exact and
             near duplicates as results arrive in order;
3. split     eval gets about split.eval_fraction of each stage group's kept
             bytes: whole packages where possible, else files (split.py);
4. build     rows for the kept files: stage 1 documents, stage 2 FIM rows and
             mined pairs, stage 3 book rows, each to its file's split; a stage
             still without eval rows then holds out rows (_hold_out_rows);
5. replay    general code mixed into every stage up to the configured share;
6. report    manifest.json (with the SHA-256 of every file) and REPORT.md, then
             the staging directory is renamed to OUT.

Same inputs + config + seed give byte-identical output: tasks are pure
functions of the files, results are consumed in task order, and nothing
written depends on time or on which process did the work.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from array import array
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from python_worker.config import REPO_ROOT
from python_worker.dataset import (
    books,
    conversations,
    decontam,
    dedup,
    file_tasks,
    inputs,
    output,
    replay,
    report,
    split,
    tokens,
)
from python_worker.dataset.clean import language_of
from python_worker.dataset.config import DatasetConfig, config_to_dict
from python_worker.dataset.dedup import NearDupIndex
from python_worker.dataset.errors import InvalidRequest
from python_worker.dataset.file_tasks import FileJob, ScanResult, dumps
from python_worker.dataset.pool import ProcessPool, available_cores
from python_worker.job_events import LOG, PROGRESS, Emit, Event, finite, ms
from python_worker.jobs import Cancelled

# The public eval sets ship with the project, so a fresh clone decontaminates by default.
DEFAULT_EVAL_DIR = REPO_ROOT / "evals"
MAX_ERRORS_LISTED = 20


@dataclass
class BuildRequest:
    inputs: list[str]
    out_dir: str
    config: DatasetConfig = field(default_factory=DatasetConfig)
    # None means config.seed.
    seed: int | None = None
    # Extra eval JSONL files, on top of config.decontam.eval_files and the eval dir.
    eval_files: list[str] = field(default_factory=list)
    job_id: str = ""


@dataclass
class BuildResult:
    out_dir: Path
    manifest: dict[str, Any]
    elapsed_s: float


@dataclass
class Plan:
    """A validated request: everything `run` needs, checked before work starts."""

    config: DatasetConfig
    seed: int
    out_dir: Path
    inputs: list[inputs.InputDir]
    sources: list[inputs.Source]
    eval_dir: Path | None
    eval_files: list[decontam.EvalFile]
    tokenizer: str
    replay_dir: Path | None
    job_id: str
    conversation_logs: list[Path] = field(default_factory=list)


def prepare(request: BuildRequest) -> Plan:
    """Validate the request; raises InvalidRequest naming the problem."""
    config = request.config
    seed = config.seed if request.seed is None else int(request.seed)
    if seed < 0:
        raise InvalidRequest(f"seed must be >= 0, got {seed}")
    if not request.out_dir:
        raise InvalidRequest("no output directory given (out_dir)")
    out_dir = Path(request.out_dir).resolve()
    input_dirs, sources = inputs.read_inputs(list(request.inputs))
    for d in input_dirs:
        if out_dir == d.path or d.path in out_dir.parents:
            raise InvalidRequest(f"output {out_dir} must not be inside input {d.path}")
    output.check_out_dir(out_dir)
    sources += inputs.book_sources(config.stage3.book_dirs, first_index=len(input_dirs))
    spec = config.decontam.eval_dir
    if spec == "auto":
        eval_dir = DEFAULT_EVAL_DIR if DEFAULT_EVAL_DIR.is_dir() else None
    elif spec == "none":
        eval_dir = None
    else:
        eval_dir = Path(spec)
    files = decontam.eval_files(eval_dir, [*config.decontam.eval_files, *request.eval_files])
    replay_dir = replay.resolve_dir(config.replay.dir) if config.replay.share > 0 else None
    return Plan(
        config=config,
        seed=seed,
        out_dir=out_dir,
        inputs=input_dirs,
        sources=sources,
        eval_dir=eval_dir.resolve() if eval_dir else None,
        eval_files=files,
        tokenizer=tokens.resolve(config.tokenizer),
        replay_dir=replay_dir,
        job_id=request.job_id,
        conversation_logs=conversations.log_files(config.stage2.conversation_logs),
    )


def build(
    request: BuildRequest,
    progress: Emit,
    cancel: threading.Event,
) -> BuildResult:
    """Validate, then build. Raises InvalidRequest (before any work) or Cancelled (the temporary output removed)."""
    return run(prepare(request), progress, cancel)


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------


@dataclass
class _Kept:
    rel: str
    size: int
    modules: list[str]


@dataclass
class _Stats:
    scanned: int = 0
    scanned_bytes: int = 0
    kept: int = 0
    kept_bytes: int = 0
    drops: Counter = field(default_factory=Counter)
    drop_bytes: Counter = field(default_factory=Counter)
    secrets: Counter = field(default_factory=Counter)
    contamination: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    rows: Counter = field(default_factory=Counter)  # (stage, split) -> rows
    tokens: Counter = field(default_factory=Counter)
    out_bytes: Counter = field(default_factory=Counter)
    replay_rows: Counter = field(default_factory=Counter)
    replay_tokens: Counter = field(default_factory=Counter)
    kinds: Counter = field(default_factory=Counter)
    source_tokens: Counter = field(default_factory=Counter)
    lengths: dict[int, array] = field(default_factory=lambda: {s: array("l") for s in output.STAGES})
    errors: list[str] = field(default_factory=list)
    error_count: int = 0
    replay_files: int = 0
    # Every file dropped as contaminated: source, path, eval set, kind, problem, match.
    contaminated: list[dict[str, str]] = field(default_factory=list)
    # Token counts of each stage's train rows in write order (for a split by row).
    train_tokens: dict[int, list[int]] = field(default_factory=lambda: {s: [] for s in output.STAGES})
    stage_modes: dict[int, str] = field(default_factory=dict)
    conversations: dict[str, Any] | None = None

    def drop(self, reason: str, size: int) -> None:
        self.drops[reason] += 1
        self.drop_bytes[reason] += size


class _Reporter:
    """Rate-limited progress events with elapsed time and a per-phase ETA."""

    def __init__(self, progress: Emit, cancel: threading.Event) -> None:
        self._progress = progress
        self._cancel = cancel
        self.start = time.monotonic()
        self._phase_start = self.start
        self._last = 0.0

    def phase(self, name: str, message: str, total: int = 0) -> None:
        self.check_cancel()
        self._phase_start = time.monotonic()
        self.emit(name, message, 0, total, force=True)

    def emit(
        self,
        phase: str,
        message: str,
        step: int = 0,
        total: int = 0,
        metrics: dict[str, float] | None = None,
        force: bool = False,
    ) -> None:
        now = time.monotonic()
        if not force and now - self._last < 0.5:
            return
        self._last = now
        in_phase = now - self._phase_start
        eta = 0.0  # unknown until some of the phase is done (and 0 once it is)
        if total and step and step < total:
            eta = in_phase / step * (total - step)
        self._progress(
            Event(
                PROGRESS,
                phase,
                message,
                step,
                total,
                elapsed_ms=ms(now - self.start),
                eta_ms=ms(eta),
                metrics=finite(dict(metrics or {})),
            )
        )

    def log(self, phase: str, message: str) -> None:
        self._progress(Event(LOG, phase, message, elapsed_ms=ms(time.monotonic() - self.start)))

    def check_cancel(self) -> None:
        if self._cancel.is_set():
            raise Cancelled("the build was cancelled")


def _split(sources: list[inputs.Source], kept: list[list[_Kept]], seed: int, cfg: DatasetConfig) -> split.Split:
    """Train/eval per package (or file) from the kept files, aiming at a share of bytes.

    Code files feed stages 1-2 and Markdown (and books) stage 3; each group gets
    its own eval data (see split.assign). A source with nothing kept takes no part.
    """
    files: dict[str, list[tuple[str, int, str]]] = defaultdict(list)
    for s, ks in zip(sources, kept, strict=True):
        for k in ks:
            lang = language_of(k.rel)
            group = split.DOCS if lang == "markdown" else split.CODE
            files[s.split_key].append((k.rel, k.size, group))
    enabled = {
        split.CODE: cfg.stage1.enabled or cfg.stage2.enabled,
        split.DOCS: cfg.stage3.enabled,
    }
    return split.assign(files, seed, cfg.split.eval_fraction, cfg.split.min_eval_sources, enabled)


def run(plan: Plan, progress: Emit, cancel: threading.Event) -> BuildResult:
    rep = _Reporter(progress, cancel)
    cfg = plan.config
    stats = _Stats()

    rep.phase("plan", "listing files and ordering sources")
    for d in plan.inputs:
        if d.partial_last_line:
            rep.log("plan", f"{d.path}/manifest.jsonl: ignored a cut-short last line")
    sources = inputs.preference_order(plan.sources)
    for s in sources:
        s.files = inputs.list_files(s)
        rep.check_cancel()
    index = None
    if plan.eval_files:
        built = decontam.build_index(
            plan.eval_files,
            cfg.decontam.ngram,
            cfg.decontam.fields,
            cfg.decontam.solution_fields,
            cfg.decontam.boilerplate_problems,
            cfg.decontam.text_fields,
            cfg.decontam.text_ngram,
        )
        index = dataclasses.asdict(built)
        for f in plan.eval_files:
            stats.contamination[f.name] = Counter()
    payload = worker_payload(cfg, plan.seed, plan.tokenizer, index)
    processes = cfg.workers or available_cores()
    staging = output.StagingDir(plan.out_dir)
    try:
        with ProcessPool(processes, payload) as pool:
            kept = _scan(pool, sources, plan, stats, rep)
            splits = _split(sources, kept, plan.seed, cfg)
            _build_rows(pool, sources, kept, splits, plan, stats, staging, rep)
            _conversation_rows(plan, index, stats, staging, rep)
            _hold_out_rows(splits, plan, stats, staging, rep)
            _replay(pool, plan, stats, staging, rep)
        rep.phase("report", "writing manifest.json and REPORT.md")
        staging.close_files()
        manifest = _finish(plan, sources, splits, stats, staging.path)
        rep.check_cancel()
        out = staging.commit()
    except BaseException:
        staging.abort()
        raise
    elapsed = time.monotonic() - rep.start
    rows = sum(stats.rows.values())
    rep.emit(
        "done",
        f"wrote {rows:,} rows to {out}",
        1,
        1,
        {
            "rows_written": rows,
            "tokens": sum(stats.tokens.values()),
            "mb_in": stats.scanned_bytes / 1e6,
        },
        force=True,
    )
    return BuildResult(out_dir=out, manifest=manifest, elapsed_s=elapsed)


def worker_payload(
    cfg: DatasetConfig, seed: int, tokenizer: str, decontam_index: dict[str, Any] | None
) -> dict[str, Any]:
    """What every pool process is initialised with (file_tasks.init)."""
    return {
        "config": config_to_dict(cfg),
        "seed": seed,
        "tokenizer": tokenizer,
        "decontam": decontam_index,
        "permutations": (dedup.permutations(cfg.dedup.num_perm, cfg.dedup.minhash_seed) if cfg.dedup.near else None),
    }


def _chunks(items: list[Any], budget: int, size_of: Callable[[Any], int]) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    used = 0
    for item in items:
        chunk.append(item)
        used += size_of(item)
        if used >= budget:
            yield chunk
            chunk, used = [], 0
    if chunk:
        yield chunk


def _scan(
    pool: ProcessPool,
    sources: list[inputs.Source],
    plan: Plan,
    stats: _Stats,
    rep: _Reporter,
) -> list[list[_Kept]]:
    cfg = plan.config
    table: list[tuple[int, str]] = []  # file_id -> (source index, rel)
    tasks: list[tuple[str, list[tuple[int, str, int]]]] = []
    for si, s in enumerate(sources):
        entries = []
        for rel, size in s.files:
            entries.append((len(table), rel, size))
            table.append((si, rel))
        for chunk in _chunks(entries, cfg.task_bytes, lambda e: min(e[2], cfg.clean.max_file_bytes) + 200):
            tasks.append((str(s.root), chunk))
    total_bytes = sum(size for s in sources for _, size in s.files)
    rep.phase(
        "scan",
        f"scanning {len(table):,} files ({total_bytes / 1e6:.1f} MB)",
        total_bytes,
    )

    exact_seen: set[bytes] = set()
    near = NearDupIndex(cfg.dedup.threshold, cfg.dedup.num_perm, cfg.dedup.minhash_seed) if cfg.dedup.near else None
    kept: list[list[_Kept]] = [[] for _ in sources]
    t0 = time.monotonic()
    results: Iterator[list[ScanResult]] = pool.map(file_tasks.scan, tasks)
    for batch in results:
        rep.check_cancel()
        for r in batch:
            si, rel = table[r.file_id]
            stats.scanned += 1
            stats.scanned_bytes += r.size
            stats.secrets.update(r.secrets)
            if r.reason is not None:
                stats.drop(r.reason, r.size)
                for hit in r.contamination or []:
                    stats.contamination[hit.eval_set][hit.kind] += 1
                    stats.contamination[hit.eval_set]["files"] += 1
                    stats.contaminated.append(
                        {
                            "source": sources[si].label,
                            "path": rel,
                            "eval_set": hit.eval_set,
                            "kind": hit.kind,
                            "problem": hit.problem,
                            "match": hit.match,
                        }
                    )
                continue
            if r.exact is not None:
                if r.exact in exact_seen:
                    stats.drop("exact_duplicate", r.size)
                    continue
                exact_seen.add(r.exact)
            if near is not None and r.signature is not None and near.seen(r.signature):
                stats.drop("near_duplicate", r.size)
                continue
            stats.kept += 1
            stats.kept_bytes += r.size
            kept[si].append(_Kept(rel, r.size, r.modules or []))
        mb = stats.scanned_bytes / 1e6
        rep.emit(
            "scan",
            f"scanned {stats.scanned:,}/{len(table):,} files, kept {stats.kept:,}",
            stats.scanned_bytes,
            total_bytes,
            {
                "files_scanned": stats.scanned,
                "files_kept": stats.kept,
                "files_dropped": sum(stats.drops.values()),
                "mb_per_s": mb / max(time.monotonic() - t0, 1e-9),
            },
        )
    return kept


def _jobs_for(source: inputs.Source, files: list[_Kept]) -> list[FileJob]:
    """Code files by path, then Markdown chapters in reading order; test files
    carry the file of the module they test."""
    defined: dict[str, _Kept] = {}
    for k in files:
        if not k.rel.endswith("_test.exs"):
            for mod in k.modules:
                defined.setdefault(mod, k)
    code: list[FileJob] = []
    chapters: dict[str, _Kept] = {}
    for k in files:
        if language_of(k.rel) == "markdown":
            chapters[k.rel] = k
            continue
        tested = None
        if k.rel.endswith("_test.exs"):
            for mod in k.modules:
                target = defined.get(mod[: -len("Test")]) if mod.endswith("Test") else None
                if target is not None:
                    tested = (target.rel, target.size)
                    break
        code.append(FileJob(k.rel, k.size, tested))
    summary = None
    for name in ("SUMMARY.md", "summary.md"):
        p = source.root / name
        if p.is_file():
            summary = p.read_text(encoding="utf-8", errors="replace")
            break
    order = books.chapter_order(list(chapters), summary)
    return code + [FileJob(rel, chapters[rel].size) for rel in order]


def _build_rows(
    pool: ProcessPool,
    sources: list[inputs.Source],
    kept: list[list[_Kept]],
    splits: split.Split,
    plan: Plan,
    stats: _Stats,
    staging: output.StagingDir,
    rep: _Reporter,
) -> None:
    cfg = plan.config
    tasks: list[tuple[str, str, str, list[FileJob]]] = []
    owners: list[int] = []
    for si, s in enumerate(sources):
        jobs = _jobs_for(s, kept[si])
        for chunk in _chunks(
            jobs,
            cfg.task_bytes,
            lambda j: j.size + (j.tested[1] if j.tested else 0) + 200,
        ):
            tasks.append((str(s.root), s.label, s.license, chunk))
            owners.append(si)
    total = stats.kept_bytes
    rep.phase("build", f"building rows from {stats.kept:,} kept files", total)
    done = 0
    curriculum: Counter = Counter()
    t0 = time.monotonic()
    for ti, batch in enumerate(pool.map(file_tasks.build_rows, tasks)):
        rep.check_cancel()
        s = sources[owners[ti]]
        stats.kinds.update(batch.kinds)
        stats.error_count += len(batch.errors)
        for e in batch.errors:
            if len(stats.errors) < MAX_ERRORS_LISTED:
                stats.errors.append(e)
            rep.log("build", f"row building failed: {e}")
        for stage in output.STAGES:
            if not _stage_enabled(cfg, stage):
                continue
            for line, n, path in zip(batch.lines[stage], batch.tokens[stage], batch.paths[stage], strict=True):
                if stage == 3:
                    line["curriculum_index"] = curriculum[s.label]
                    curriculum[s.label] += 1
                    line = dumps(line)
                where = splits.where(s.split_key, path)
                _account(stats, staging, stage, where, line, n, s.label)
                if where == "train":
                    stats.train_tokens[stage].append(n)
        done += sum(j.size for j in tasks[ti][3])
        rows = sum(stats.rows.values())
        rep.emit(
            "build",
            f"{rows:,} rows from {s.label}",
            done,
            total,
            {
                "rows_written": rows,
                "mb_per_s": done / 1e6 / max(time.monotonic() - t0, 1e-9),
            },
        )


def _conversation_rows(
    plan: Plan, index: dict[str, Any] | None, stats: _Stats, staging: output.StagingDir, rep: _Reporter
) -> None:
    """Stage 2 chat rows from conversation logs (conversations.py), scrubbed, decontaminated and deduplicated."""
    cfg = plan.config
    if not plan.conversation_logs or not cfg.stage2.enabled:
        return
    rep.phase("conversations", f"reading {len(plan.conversation_logs)} conversation logs")
    found, summary = conversations.rows(
        plan.conversation_logs,
        cfg,
        plan.seed,
        decontam.DecontamIndex(**index) if index else None,
        stats.secrets,
        stats.contamination,
        stats.contaminated,
    )
    counts = tokens.TokenCounter(plan.tokenizer).count([r.text for r in found])
    for row, n in zip(found, counts, strict=True):
        _account(stats, staging, 2, row.where, dumps(row.line), n, conversations.SOURCE)
        if row.where == "train":
            stats.train_tokens[2].append(n)
    stats.kinds["stage2.conversation"] += len(found)
    stats.conversations = summary.as_dict()
    for line in summary.skipped:
        rep.log("conversations", f"skipped {line}")


def _hold_out_rows(
    splits: split.Split,
    plan: Plan,
    stats: _Stats,
    staging: output.StagingDir,
    rep: _Reporter,
) -> None:
    """The last fallback: a stage with train rows and no eval rows (too few files
    for a split by file) holds out rows. Runs before replay, so only corpus rows move."""
    cfg = plan.config
    for group, stages in split.GROUP_STAGES.items():
        for stage in stages:
            stats.stage_modes[stage] = splits.modes.get(group, "none") if _stage_enabled(cfg, stage) else "off"
    for stage in output.STAGES:
        if not _stage_enabled(cfg, stage) or cfg.split.eval_fraction <= 0:
            continue
        if stats.rows[(stage, "eval")] > 0 or stats.rows[(stage, "train")] < 2:
            continue
        tokens = stats.train_tokens[stage]
        chosen = split.row_choice(plan.seed, stage, tokens, cfg.split.eval_fraction)
        moved_bytes = staging.move_rows(stage, chosen)
        moved_tokens = sum(tokens[i] for i in chosen)
        for sp, sign in (("train", -1), ("eval", 1)):
            stats.rows[(stage, sp)] += sign * len(chosen)
            stats.tokens[(stage, sp)] += sign * moved_tokens
            stats.out_bytes[(stage, sp)] += sign * moved_bytes
        stats.stage_modes[stage] = "row"
        rep.log("split", f"stage {stage}: too few files for a split by file; held out {len(chosen)} rows")


def _stage_enabled(cfg: DatasetConfig, stage: int) -> bool:
    return {1: cfg.stage1.enabled, 2: cfg.stage2.enabled, 3: cfg.stage3.enabled}[stage]


def _account(
    stats: _Stats,
    staging: output.StagingDir,
    stage: int,
    where: str,
    line: str,
    n: int,
    label: str,
) -> None:
    stats.out_bytes[(stage, where)] += staging.write(stage, where, line)
    stats.rows[(stage, where)] += 1
    stats.tokens[(stage, where)] += n
    stats.source_tokens[label] += n
    stats.lengths[stage].append(n)


def _replay(
    pool: ProcessPool,
    plan: Plan,
    stats: _Stats,
    staging: output.StagingDir,
    rep: _Reporter,
) -> None:
    cfg = plan.config
    if plan.replay_dir is None or cfg.replay.share <= 0:
        return
    ratio = cfg.replay.share / (1 - cfg.replay.share)
    wanted_splits = ("train", "eval") if cfg.replay.in_eval else ("train",)
    deficit = {
        (stage, sp): ratio * stats.tokens[(stage, sp)]
        for stage in output.STAGES
        for sp in wanted_splits
        if _stage_enabled(cfg, stage) and stats.tokens[(stage, sp)] > 0
    }
    if not deficit:
        return
    target = int(sum(deficit.values()))
    rep.phase("replay", f"mixing in {target:,} tokens of replay code", target)
    prefix = replay.prefix(plan.replay_dir, cfg.replay.dir)
    files = replay.list_files(plan.replay_dir, cfg.replay.max_file_bytes, plan.seed)
    tasks = ((str(plan.replay_dir), prefix, chunk) for chunk in _chunks(files, 200_000, lambda f: f[1]))
    added = 0
    for results in pool.map(file_tasks.replay, tasks):
        rep.check_cancel()
        for r in results:
            open_slots = [k for k, v in deficit.items() if v > 0]
            if not open_slots:
                return
            if r.reason is not None:
                stats.drop(f"replay_{r.reason}", 0)
                continue
            stats.secrets.update(r.secrets)
            # The slot furthest from its target takes the file; stage 2 only as FIM.
            choices = [k for k in open_slots if k[0] != 2 or r.fim_row is not None]
            if not choices:
                continue
            stage, sp = max(choices, key=lambda k: (deficit[k], -k[0], k[1]))
            line, n = (r.fim_row, r.fim_tokens) if stage == 2 else (r.text_row, r.text_tokens)
            assert line is not None
            _account(stats, staging, stage, sp, line, n, "replay")
            stats.replay_rows[(stage, sp)] += 1
            stats.replay_tokens[(stage, sp)] += n
            stats.kinds[f"stage{stage}.replay"] += 1
            stats.replay_files += 1
            deficit[(stage, sp)] -= n
            added += n
        rep.emit("replay", f"{added:,} replay tokens", min(added, target), target)


def _split_summary(cfg: DatasetConfig, splits: split.Split, stats: _Stats) -> dict[str, Any]:
    """How each stage was split and the eval share of its corpus tokens (replay left out)."""
    stages: dict[str, Any] = {}
    for stage in output.STAGES:
        own = {sp: stats.tokens[(stage, sp)] - stats.replay_tokens[(stage, sp)] for sp in output.SPLITS}
        total = own["train"] + own["eval"]
        stages[f"stage{stage}"] = {
            "mode": stats.stage_modes.get(stage, "off"),
            "eval_token_share": round(own["eval"] / total, 4) if total else 0.0,
        }
    return {
        "eval_fraction": cfg.split.eval_fraction,
        "stages": stages,
        "eval_files": sorted(f"{k}/{rel}" for k, rel in splits.eval_files),
    }


def _finish(
    plan: Plan,
    sources: list[inputs.Source],
    splits: split.Split,
    stats: _Stats,
    staging_path: Path,
) -> dict[str, Any]:
    cfg = plan.config
    charts_dir = staging_path / "charts"
    charts_dir.mkdir()
    ext = cfg.report.chart_format
    lengths = {s: np.array(stats.lengths[s], dtype=np.int64) for s in output.STAGES}
    report.token_histograms(lengths, charts_dir / f"token_lengths.{ext}", cfg.report)
    report.source_shares(dict(stats.source_tokens), charts_dir / f"source_share.{ext}", cfg.report)
    charts = [f"charts/token_lengths.{ext}", f"charts/source_share.{ext}"]

    resolved = config_to_dict(cfg)
    # Performance knobs do not change a byte of output; leaving them out keeps
    # builds with different worker counts byte-identical.
    del resolved["workers"], resolved["task_bytes"]
    resolved["seed"] = plan.seed
    resolved["tokenizer"] = plan.tokenizer
    resolved["decontam"]["eval_dir"] = str(plan.eval_dir) if plan.eval_dir else "none"
    resolved["replay"]["dir"] = str(plan.replay_dir) if plan.replay_dir else "none"
    eval_keys = sorted(k for k, v in splits.keys.items() if v == "eval")
    manifest: dict[str, Any] = {
        "builder": "python_worker.dataset",
        "format_version": 1,
        "seed": plan.seed,
        "config": resolved,
        "tokenizer": {
            "name": plan.tokenizer if plan.tokenizer == "regex" else str(PurePosixPath(plan.tokenizer).parent.name),
            "path": plan.tokenizer,
            "sha256": tokens.fingerprint(plan.tokenizer),
        },
        "inputs": [{"path": str(i.path), "manifest_sha256": i.manifest_sha256, "rows": i.rows} for i in plan.inputs],
        "books": [
            {"path": str(s.root.resolve()), "name": s.name, "license": s.license}
            for s in plan.sources
            if s.kind == "book"
        ],
        "eval_sets": [
            {
                "name": f.name,
                "path": str(f.path.resolve()),
                "rows": f.rows,
                "sha256": output.sha256_file(f.path),
            }
            for f in plan.eval_files
        ],
        "sources": {
            "total": len(sources),
            "train": sum(1 for s in sources if splits.keys.get(s.split_key) == "train"),
            "eval": sum(1 for s in sources if splits.keys.get(s.split_key) == "eval"),
            "without_files": sum(1 for s in sources if s.split_key not in splits.keys),
            "eval_keys": eval_keys,
        },
        "split": _split_summary(cfg, splits, stats),
        "files": {
            "scanned": stats.scanned,
            "bytes": stats.scanned_bytes,
            "kept": stats.kept,
            "kept_bytes": stats.kept_bytes,
        },
        "drops": {r: {"files": stats.drops[r], "bytes": stats.drop_bytes[r]} for r in sorted(stats.drops)},
        "secrets": dict(sorted(stats.secrets.items())),
        "decontamination": {
            name: {"files": c["files"], "ngram": c["ngram"], "text": c["text"], "solution": c["solution"]}
            for name, c in sorted(stats.contamination.items())
        },
        "contaminated_files": stats.contaminated,
        "stages": {
            f"stage{stage}": {
                sp: {
                    "rows": stats.rows[(stage, sp)],
                    "tokens": stats.tokens[(stage, sp)],
                    "bytes": stats.out_bytes[(stage, sp)],
                    "replay_rows": stats.replay_rows[(stage, sp)],
                    "replay_tokens": stats.replay_tokens[(stage, sp)],
                }
                for sp in output.SPLITS
            }
            for stage in output.STAGES
        },
        "row_kinds": dict(sorted(stats.kinds.items())),
        "replay": {
            "dir": str(plan.replay_dir) if plan.replay_dir else None,
            "license": replay.LICENSE,
            "files": stats.replay_files,
        },
        "licenses": {s.label: s.license for s in sorted(sources, key=lambda s: s.label)},
        "errors": {"count": stats.error_count, "first": stats.errors},
    }
    if stats.conversations is not None:
        manifest["conversations"] = stats.conversations
    (staging_path / "REPORT.md").write_text(report.markdown(manifest, charts), encoding="utf-8")
    manifest["files_sha256"] = {
        p.relative_to(staging_path).as_posix(): output.sha256_file(p)
        for p in sorted(staging_path.rglob("*"))
        if p.is_file()
    }
    data = (json.dumps(manifest, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()
    output.write_atomic(staging_path / "manifest.json", data)
    return manifest
