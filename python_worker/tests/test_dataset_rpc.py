"""The BuildDataset mapping (JobEvents, eager validation, cancel) and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import grpc
import pytest

from python_worker.config import REPO_ROOT
from python_worker.dataset import inputs as dataset_inputs
from python_worker.dataset.errors import InvalidRequest
from python_worker.dataset.rpc import build_dataset_events
from python_worker.errors import WorkerError
from python_worker.proto import worker_pb2
from python_worker.tests.test_dataset_corpus import Corpus, write_corpus

JobEvent = worker_pb2.JobEvent
FAST = json.dumps({"workers": 1, "replay": {"share": 0.0}, "stage3": {"enabled": False}})


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return write_corpus(tmp_path_factory.mktemp("rpc"))


def _req(corpus: Corpus, out: Path, **kw: object) -> worker_pb2.BuildDatasetRequest:
    fields = {
        "job_id": "j1",
        "inputs": [str(corpus.hex_dir)],
        "out_dir": str(out),
        "config_json": FAST,
        "seed": 5,
    }
    fields.update(kw)
    return worker_pb2.BuildDatasetRequest(**fields)


def test_events_end_with_completed(corpus: Corpus, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    events = list(build_dataset_events(_req(corpus, out, eval_files=[str(corpus.extra_eval)]), threading.Event()))
    assert all(e.job_id == "j1" for e in events)
    assert [e.kind for e in events[:-1]] == [JobEvent.PROGRESS] * (len(events) - 1)
    last = events[-1]
    assert last.kind == JobEvent.COMPLETED and last.artifact_path == str(out)
    assert last.metrics["rows_written"] > 0 and last.metrics["files_kept"] > 0
    assert {"plan", "scan", "build", "report"} <= {e.phase for e in events}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 5 and manifest["decontamination"]["extra_eval"]["files"] == 1


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (
            {"inputs": ["/no/such/input"]},
            "input directory /no/such/input does not exist",
        ),
        (
            {"config_json": '{"dedup": {"threshold": "high"}}'},
            "config_json: dedup.threshold must be a finite number, got 'high'",
        ),
        ({"config_json": "{not json"}, "config_json: not valid JSON"),
        (
            {"eval_files": ["/no/such/eval.jsonl"]},
            "eval file /no/such/eval.jsonl does not exist",
        ),
        ({"out_dir": ""}, "no output directory"),
    ],
)
def test_invalid_requests_raise_at_call_time(corpus: Corpus, tmp_path: Path, change: dict, needle: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        build_dataset_events(_req(corpus, tmp_path / "ds", **change), threading.Event())  # not iterated
    assert needle in str(info.value)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, WorkerError) and info.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_cancel_yields_cancelled_and_writes_nothing(corpus: Corpus, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    cancel = threading.Event()
    cancel.set()
    events = list(build_dataset_events(_req(corpus, out), cancel))
    assert events[-1].kind == JobEvent.CANCELLED
    assert not out.exists() and not list(tmp_path.glob(".ds.tmp-*"))


def test_closing_the_stream_cancels_the_build(corpus: Corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "ds"
    cancel = threading.Event()
    # The build lists its files only once the stream is closed, so it is still
    # running when the client goes away (otherwise a fast build could win the race).
    real_list_files = dataset_inputs.list_files

    def list_files_after_close(source: dataset_inputs.Source) -> list[tuple[str, int]]:
        assert cancel.wait(timeout=60), "the stream was never closed"
        return real_list_files(source)

    monkeypatch.setattr(dataset_inputs, "list_files", list_files_after_close)
    stream = build_dataset_events(_req(corpus, out), cancel)
    first = next(stream)
    assert first.kind == JobEvent.PROGRESS
    stream.close()  # the client went away: cancel is set and the build joined
    assert cancel.is_set()
    assert not out.exists()
    assert not list(tmp_path.glob(".ds.tmp-*"))


def test_cli(corpus: Corpus, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "python_worker.dataset"]
    bad = subprocess.run(  # noqa: PLW1510 -- the return code is the assertion
        [*cmd, "--input", str(tmp_path / "nope"), "--out", str(tmp_path / "o")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "error: input directory" in bad.stderr
    config = tmp_path / "c.json"
    config.write_text(FAST)
    ok = subprocess.run(  # noqa: PLW1510 -- the return code is the assertion
        [
            *cmd,
            "--input",
            str(corpus.hex_dir),
            "--out",
            str(tmp_path / "o"),
            "--config",
            str(config),
            "--seed",
            "9",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ok.returncode == 0, ok.stderr
    summary = json.loads(ok.stdout.strip().splitlines()[-1])
    assert summary["rows"]["stage1"]["train"] > 0
    assert "scan" in ok.stderr and "done" in ok.stderr


def test_two_builds_in_one_process_at_once(corpus: Corpus, tmp_path: Path) -> None:
    # Inline builds (one worker) keep their state per thread, so two concurrent
    # RPCs in one worker process must not mix their configs or caches.
    outs = [tmp_path / "a", tmp_path / "b"]
    results: dict[int, list] = {}

    def run(i: int) -> None:
        req = _req(corpus, outs[i], job_id=f"j{i}")
        results[i] = list(build_dataset_events(req, threading.Event()))

    threads = [threading.Thread(target=run, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert [results[i][-1].kind for i in (0, 1)] == [JobEvent.COMPLETED] * 2
    for name in ("stage1/train.jsonl", "stage2/train.jsonl", "manifest.json", "REPORT.md"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name
