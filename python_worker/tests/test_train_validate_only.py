"""Train with validate_only: the host's pre-flight check of a stage, with nothing trained."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from python_worker.proto import worker_pb2
from python_worker.tests.test_training_fixtures import write_dataset
from python_worker.training.errors import InvalidRequest
from python_worker.training.rpc import train_events


def request(model: str, data: Path, out: Path, **config: object) -> worker_pb2.TrainRequest:
    return worker_pb2.TrainRequest(
        job_id="check",
        base_model=model,
        dataset_dir=str(data),
        stage=1,
        output_dir=str(out),
        validate_only=True,
        config=worker_pb2.TrainConfig(max_steps=2, learning_rate=1e-3, **config),
    )


def test_a_valid_request_completes_at_once_and_writes_nothing(tiny_model: Path, tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "data")
    out = tmp_path / "out"

    events = list(train_events(request(str(tiny_model), data, out), threading.Event()))

    assert [event.kind for event in events] == [worker_pb2.JobEvent.COMPLETED]
    assert "nothing was trained" in events[0].message
    assert not out.exists()


def test_every_problem_is_named_even_when_the_model_is_missing(tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "data")
    missing = tmp_path / "no-such-model"

    with pytest.raises(InvalidRequest) as raised:
        train_events(request(str(missing), data, tmp_path / "out", max_grad_norm=-1.0), threading.Event())

    first, second = str(raised.value).splitlines()
    assert first.startswith(f"base_model: no model at {str(missing)!r}")
    assert second.startswith("config.max_grad_norm")


def test_an_eval_set_of_only_replay_rows_is_reported(tiny_model: Path, tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "data")
    eval_set = data / "stage3" / "eval.jsonl"
    # Exactly source "replay" is general code; "replay:x" is not (one definition, the worker's).
    eval_set.write_text('{"text": "def f(): pass", "source": "replay"}\n' * 3)
    req = request(str(tiny_model), data, tmp_path / "out")
    req.stage, req.eval_path = 3, str(eval_set)

    with pytest.raises(InvalidRequest) as raised:
        train_events(req, threading.Event())
    assert str(raised.value) == (
        f"eval_path: {eval_set} has no Elixir rows (every row is replay, source 'replay'), "
        "so the stage has no Elixir eval loss to gate on"
    )

    eval_set.write_text('{"text": "def f(): pass", "source": "replay"}\n{"text": "x = 1", "source": "replay:py"}\n')
    assert [e.kind for e in train_events(req, threading.Event())] == [worker_pb2.JobEvent.COMPLETED]


def test_the_eval_set_is_checked_even_when_the_model_is_missing(tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "data")
    req = request(str(tmp_path / "no-model"), data, tmp_path / "out")
    req.eval_path = str(tmp_path / "missing.jsonl")

    with pytest.raises(InvalidRequest) as raised:
        train_events(req, threading.Event())
    assert str(raised.value).splitlines()[1] == f"eval_path: {tmp_path / 'missing.jsonl'} does not exist"
