"""The Ingest job: files → chunks → memory, streaming JobEvents.

    events = ingest_events(store, request, cancel)   # raises InvalidRequest now
    for event in events: ...                           # PROGRESS (a file done), LOG (a skipped
                                                       # line, as FILE:LINE), then COMPLETED,
                                                       # FAILED or CANCELLED

Inputs are files or directories (searched recursively, skipping `.git`,
`_build`, `deps` and `node_modules`): conversation logs (rag/logs.py: `*.jsonl`,
and `*.json` Continue sessions, which a directory walk tells from other JSON by
their start; one `conversation` document per exchange), `*.md` and
`*.ex`/`*.exs` (rag/chunking.py). Documents are upserted in batches; the cancel event is
checked between batches. COMPLETED's metrics: files, chunks, added, existing,
skipped_lines.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from python_worker.errors import InvalidRequest
from python_worker.job_events import CANCELLED, COMPLETED, FAILED, LOG, PROGRESS, Event, ms, proto_stream
from python_worker.proto import worker_pb2 as pb
from python_worker.rag import chunking, logs
from python_worker.rag.store import Document, MemoryStore, check_collection

SUFFIXES = logs.LOG_SUFFIXES + chunking.MARKDOWN_SUFFIXES + chunking.ELIXIR_SUFFIXES
SKIP_DIRS = frozenset({".git", "_build", "deps", "node_modules"})
BATCH = 64
# LOG events for skipped lines, per file; the count in the metrics is always complete.
MAX_SKIPPED_LOGGED = 20


@dataclass(frozen=True)
class Plan:
    files: list[Path]
    collection: str


def plan(paths: list[str], collection: str) -> Plan:
    """The files to read, or InvalidRequest naming the path or field that is wrong."""
    collection = check_collection(collection)
    if not paths:
        raise InvalidRequest("paths: at least one file or directory is required")
    files: list[Path] = []
    for index, raw in enumerate(paths):
        path = Path(raw).expanduser()
        if path.is_file():
            if path.suffix not in SUFFIXES:
                raise InvalidRequest(f"paths[{index}]: {raw} is not a {', '.join(SUFFIXES)} file")
            files.append(path)
        elif path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and p.suffix in SUFFIXES
                and not SKIP_DIRS.intersection(p.relative_to(path).parts)
                # A *.json is read only when it is a Continue session.
                and (p.suffix not in logs.LOG_SUFFIXES or logs.is_log_file(p))
            )
            if not found:
                raise InvalidRequest(f"paths[{index}]: directory {raw} holds no {', '.join(SUFFIXES)} files")
            files.extend(found)
        else:
            raise InvalidRequest(f"paths[{index}]: no such file or directory: {raw}")
    # A file named twice (directly and inside a named directory) is read once.
    unique = list(dict.fromkeys(p.resolve() for p in files))
    return Plan(unique, collection)


def documents_of(path: Path) -> tuple[list[Document], list[logs.Skipped]]:
    """The memory documents of one file, and the lines skipped (conversation logs only)."""
    if path.suffix in logs.LOG_SUFFIXES:
        parsed = logs.parse_log(path)
        docs = [Document(e.text(), e.source, "conversation", e.timestamp) for e in parsed.exchanges]
        return docs, parsed.skipped
    return [Document(c.text, c.source, c.kind) for c in chunking.chunk_file(path)], []


def run(store: MemoryStore, job: Plan, cancel: threading.Event) -> Iterator[Event]:
    """The job's events; the last is COMPLETED or CANCELLED (an exception means FAILED)."""
    started = time.monotonic()
    totals = {"files": 0, "chunks": 0, "added": 0, "existing": 0, "skipped_lines": 0}
    total = len(job.files)
    yield Event(PROGRESS, "ingest", f"{total} files to read", step=0, total_steps=total)
    for number, path in enumerate(job.files, 1):
        docs, skipped = documents_of(path)
        for bad in skipped[:MAX_SKIPPED_LOGGED]:
            yield Event(LOG, "ingest", f"skipped {path}:{bad.line}: {bad.reason}")
        if len(skipped) > MAX_SKIPPED_LOGGED:
            yield Event(LOG, "ingest", f"skipped {len(skipped) - MAX_SKIPPED_LOGGED} more lines of {path}")
        for start in range(0, len(docs), BATCH):
            if cancel.is_set():
                yield Event(CANCELLED, "cancelled", f"cancelled while reading {path}", metrics=_floats(totals))
                return
            result = store.upsert(job.collection, docs[start : start + BATCH])
            totals["added"] += result.added
            totals["existing"] += result.existing
        totals["files"] += 1
        totals["chunks"] += len(docs)
        totals["skipped_lines"] += len(skipped)
        elapsed = time.monotonic() - started
        yield Event(
            PROGRESS,
            "ingest",
            f"{path}: {len(docs)} chunks",
            step=number,
            total_steps=total,
            elapsed_ms=ms(elapsed),
            eta_ms=ms(elapsed / number * (total - number)),
            metrics=_floats(totals),
        )
    yield Event(
        COMPLETED,
        "done",
        f"{totals['files']} files, {totals['chunks']} chunks: {totals['added']} added, "
        f"{totals['existing']} already stored, {totals['skipped_lines']} lines skipped",
        step=total,
        total_steps=total,
        elapsed_ms=ms(time.monotonic() - started),
        metrics=_floats(totals),
    )


def _floats(totals: dict[str, int]) -> dict[str, float]:
    return {k: float(v) for k, v in totals.items()}


def _guarded(events: Iterator[Event]) -> Iterator[Event]:
    try:
        yield from events
    except GeneratorExit:
        raise
    except Exception as error:  # noqa: BLE001 -- reported as an event, never lost
        yield Event(FAILED, "failed", f"{type(error).__name__}: {error}")


def ingest_events(store: MemoryStore, request: pb.IngestRequest, cancel: threading.Event) -> Iterator[pb.JobEvent]:
    """The Ingest RPC: validates now (InvalidRequest), then a blocking iterator of JobEvents."""
    job = plan(list(request.paths), request.collection)
    return proto_stream(_guarded(run(store, job, cancel)), request.job_id)
