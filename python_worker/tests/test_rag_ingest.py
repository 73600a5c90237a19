"""The Ingest job's planning and cancellation (no model needed: a cancelled job embeds nothing).

Ingesting for real, with events and totals, is tested through the worker in test_rag_grpc.py.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from python_worker.errors import InvalidRequest, WorkerError
from python_worker.job_events import CANCELLED, PROGRESS
from python_worker.rag import ingest
from python_worker.rag.store import MemoryStore


def tree(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "lib").mkdir(parents=True)
    (root / "_build" / "dev").mkdir(parents=True)
    (root / "lib" / "a.ex").write_text("defmodule A do\n  def a, do: 1\nend\n")
    (root / "README.md").write_text("# A\nText.\n")
    (root / "logs.jsonl").write_text('{"messages": []}\n')
    (root / "_build" / "dev" / "skip.ex").write_text("defmodule Skip do\nend\n")
    (root / "notes.txt").write_text("not ingested")
    (root / "assets").mkdir()
    (root / "assets" / "app.css").write_text("body {}")
    # Continue's session directory: a session, and its index (a list, not a session);
    # the package.json beside it is not a log either.
    (root / "sessions").mkdir()
    (root / "sessions" / "0b1c.json").write_text('{\n  "sessionId": "0b1c",\n  "title": "t",\n  "history": []\n}')
    (root / "sessions" / "sessions.json").write_text('[{"sessionId": "0b1c", "title": "t", "dateCreated": "1"}]')
    (root / "package.json").write_text('{"name": "assets", "version": "1.0.0"}')
    return root


def test_directories_are_searched_for_ingestible_files_skipping_build_output(tmp_path: Path) -> None:
    root = tree(tmp_path)
    plan = ingest.plan([str(root), str(root / "lib" / "a.ex")], "")
    assert plan.collection == "conversations"
    assert [p.relative_to(root.resolve()).as_posix() for p in plan.files] == [
        "README.md",
        "lib/a.ex",
        "logs.jsonl",
        "sessions/0b1c.json",
    ]


@pytest.mark.parametrize(
    ("paths", "collection", "message"),
    [
        ([], "", "paths: at least one file or directory is required"),
        (["{root}/missing"], "", "paths[0]: no such file or directory"),
        (["{root}/notes.txt"], "", "paths[0]: {root}/notes.txt is not a .jsonl, .json, .md, .markdown, .ex, .exs file"),
        (["{root}/assets"], "", "paths[0]: directory {root}/assets holds no"),
        (["{root}"], "Docs!", "collection: 'Docs!' is not a collection name"),
    ],
)
def test_bad_requests_fail_before_any_work(tmp_path: Path, paths: list[str], collection: str, message: str) -> None:
    root = tree(tmp_path)
    with pytest.raises((InvalidRequest, WorkerError)) as raised:
        ingest.plan([p.format(root=root) for p in paths], collection)
    assert message.format(root=root) in str(raised.value.message)


def test_a_cancelled_job_stops_before_storing_anything(tmp_path: Path) -> None:
    root = tree(tmp_path)
    store = MemoryStore(lambda: (_ for _ in ()).throw(AssertionError("nothing may be embedded")), path=tmp_path / "q")
    cancel = threading.Event()
    cancel.set()
    events = list(ingest.run(store, ingest.plan([str(root)], "docs"), cancel))
    assert [e.kind for e in events] == [PROGRESS, CANCELLED]
    assert "cancelled while reading" in events[-1].message and events[-1].metrics["added"] == 0
    assert not (tmp_path / "q").exists()  # the store was never opened
