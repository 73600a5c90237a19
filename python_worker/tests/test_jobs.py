"""The job registry that CancelJob reaches into."""

from __future__ import annotations

import grpc
import pytest

from python_worker.errors import WorkerError
from python_worker.jobs import JobRegistry


def test_register_cancel_and_unregister() -> None:
    jobs = JobRegistry()
    calls: list[str] = []
    with jobs.running("a", "train") as job:
        job.on_cancel(lambda: calls.append("first"))
        assert jobs.get("a") is job and [j.job_id for j in jobs.list()] == ["a"]
        assert jobs.cancel("a") and job.cancelled and job.cancel_event.is_set()
        assert jobs.cancel("a")  # idempotent
        job.on_cancel(lambda: calls.append("late"))  # runs at once: already cancelled
    assert calls == ["first", "late"]
    assert jobs.get("a") is None and not jobs.cancel("a")


def test_duplicate_and_empty_ids_are_rejected() -> None:
    jobs = JobRegistry()
    jobs.register("a", "train")
    with pytest.raises(WorkerError) as raised:
        jobs.register("a", "evaluate")
    assert raised.value.code == grpc.StatusCode.ALREADY_EXISTS
    with pytest.raises(WorkerError) as raised:
        jobs.register("", "train")
    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_a_failing_callback_does_not_stop_the_others() -> None:
    jobs = JobRegistry()
    job = jobs.register("a", "train")
    seen: list[int] = []
    job.on_cancel(lambda: 1 / 0)  # type: ignore[func-returns-value]
    job.on_cancel(lambda: seen.append(1))
    jobs.cancel_all()
    assert seen == [1]
