"""End to end: the curriculum on the real host, the real worker, real Mnesia and real training.

Every test trains the tiny model (`data/models/tiny-elixir`) on a small dataset
that a `build_dataset` job builds once per module from a corpus written here,
with curriculum configs of a few steps each, so the whole module takes a few
minutes on a CPU:

* a three-stage curriculum runs end to end and writes every stage's adapter
  and metrics, and stage 1's eval loss falls;
* `kill -9` of the worker mid-stage: the attempt fails, the retry resumes from
  the checkpoint and the step numbers continue;
* a crash of the whole host re-queues the running job, which a new host on
  the same DATA_DIR runs to success;
* a gate that cannot pass stops the run with the reason recorded;
* an invalid config is rejected at POST with the field named;
* a plan that cannot finish fails before any training, naming every problem;
* worker crashes in two stages leave the third stage its full retry budget.

The tests that kill things run their own host on their own DATA_DIR; the
others share the session's `host`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.corpus import write_corpus
from tests.host_process import TINY_MODEL, HostProcess, get_json, post_json

ENDED = ("succeeded", "failed", "cancelled")

# The dataset builder's settings: no eval-set decontamination (there is no
# shared eval dir in CI), no near-dedup (the packages look alike on purpose),
# and one package in eval (small eval sets keep the evaluations quick), which
# gives every stage's eval split rows of its own.
BUILD_CONFIG = {
    "split": {"eval_fraction": 0.1, "min_eval_sources": 1},
    "decontam": {"eval_dir": "none"},
    "dedup": {"near": False},
    "workers": 1,
}


# -- the corpus and the dataset ---------------------------------------------------------


@pytest.fixture(scope="module")
def dataset(host: HostProcess, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The curriculum dataset, built once by a `build_dataset` job on the shared host."""
    root = tmp_path_factory.mktemp("curriculum-data")
    corpus = write_corpus(root / "raw")
    build_config = root / "build.json"
    build_config.write_text(json.dumps(BUILD_CONFIG))
    out = root / "dataset"
    job = submit(
        host,
        "build_dataset",
        {"inputs": [str(corpus)], "out": str(out), "config": str(build_config)},
    )
    done = wait_for_job(host, job["id"], timeout=120)
    assert done["state"] == "succeeded", done["error"]
    for stage in ("stage1", "stage2", "stage3"):
        for split in ("train", "eval"):
            path = out / stage / f"{split}.jsonl"
            assert path.exists() and path.read_text().strip(), f"{path} is missing or empty"
    return out


# -- curriculum configs ----------------------------------------------------------------


def exs(value: Any) -> str:
    """A Python value as an Elixir term: dicts become keyword lists, `:x` strings atoms."""
    if isinstance(value, dict):
        return "[" + ", ".join(f"{key}: {exs(item)}" for key, item in value.items()) + "]"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(exs(item) for item in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "nil"
    if isinstance(value, str) and value.startswith(":"):
        return value
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def write_config(
    path: Path,
    dataset: Path,
    adapters: Path,
    *,
    stages: int = 3,
    max_steps: int = 4,
    save_steps: int = 2,
    gate: dict[str, float] | None = None,
    edit: Callable[[dict[str, Any]], None] | None = None,
) -> Path:
    """A tiny curriculum: a few steps per stage, short sequences, plain LoRA of rank 8.

    `edit` may change the config (a dict, as below) before it is written.
    """
    config = {
        "name": "e2e",
        "base_model": str(TINY_MODEL),
        "dataset_dir": str(dataset),
        "adapters_dir": str(adapters),
        # The tiny model starts from random weights; any fall of the loss passes.
        "gate": gate or {"min_elixir_improvement_pct": 0.0, "max_general_regression_pct": 1000.0},
        "defaults": {
            "max_steps": max_steps,
            "batch_size": 2,
            "gradient_accumulation_steps": 1,
            "max_seq_length": 128,
            "save_steps": save_steps,
            "eval_steps": 1000,
            "early_stopping_patience": -1,
            "quantization": ":none",
            "seed": 7,
            "lora": {"r": 8, "alpha": 16},
        },
        "stages": [
            {"name": "files", "learning_rate": 5.0e-3},
            {"name": "tasks", "learning_rate": 3.0e-3, "regularizer": {"kind": ":l2", "weight": 0.01}},
            {"name": "book", "learning_rate": 3.0e-3},
        ][:stages],
    }
    if edit:
        edit(config)
    path.write_text(exs(config) + "\n")
    return path


# -- the jobs API ----------------------------------------------------------------------


def admin_token(host: HostProcess) -> str:
    return (host.data_dir / "admin_token").read_text().strip()


def post(host: HostProcess, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    return post_json(f"{host.url}{path}", body, token=admin_token(host))


def submit(host: HostProcess, job_type: str, args: dict[str, Any], **fields: Any) -> dict[str, Any]:
    status, job = post(host, "/api/jobs", {"type": job_type, "args": args, **fields})
    assert status == 201, job
    return job


def get_job(host: HostProcess, job_id: Any) -> dict[str, Any]:
    status, job = get_json(f"{host.url}/api/jobs/{job_id}")
    assert status == 200, job
    return job


def poll(
    what: str,
    check: Callable[[], Any],
    timeout: float,
    interval: float = 0.1,
    host: HostProcess | None = None,
) -> Any:
    """Calls `check` until it returns something truthy, or fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            tail = f"\nhost log:\n{host.log_tail()}" if host else ""
            pytest.fail(f"timed out after {timeout} s waiting for {what}{tail}")
        time.sleep(interval)


def wait_for_job(
    host: HostProcess,
    job_id: Any,
    timeout: float,
    seen: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Polls the job until it ends; `seen` gets every state polled on the way."""

    def ended() -> dict[str, Any] | None:
        job = get_job(host, job_id)
        if seen:
            seen(job)
        return job if job["state"] in ENDED else None

    return poll(f"job {job_id} to end", ended, timeout, host=host)


def train_step(job: dict[str, Any]) -> int | None:
    """The optimizer step of a job's latest progress when it is a training step, else None."""
    progress = job.get("progress") or {}
    phase = progress.get("phase") or ""
    # Train events carry the stage as their worker phase ("stage1"); the
    # trainer's own eval and export events ("eval", "export") carry step 0.
    if (
        phase.endswith("/train")
        and progress.get("kind") == "PROGRESS"
        and (progress.get("worker_phase") or "").startswith("stage")
    ):
        return progress.get("step")
    return None


def checkpoint_steps(stage_dir: Path) -> list[int]:
    """The steps of the stage's complete checkpoints (the trainer writes trainer_state.json last)."""
    found = []
    for path in stage_dir.glob("checkpoints/checkpoint-*"):
        suffix = path.name.removeprefix("checkpoint-")
        if suffix.isdigit() and (path / "trainer_state.json").is_file():
            found.append(int(suffix))
    return sorted(found)


def metrics(stage_dir: Path) -> dict[str, Any]:
    """The worker's metrics.json of a stage (the worker is its only writer)."""
    return json.loads((stage_dir / "metrics.json").read_text())


def verdict(run_dir: Path, number: int) -> dict[str, Any]:
    """The host's record of a stage: the numbers the worker reported and the gate verdict."""
    run = json.loads((run_dir / "run.json").read_text())
    return next(stage for stage in run["stages"] if stage["stage"] == number)


# What the host records about a stage; none of it may appear in the worker's metrics.json.
HOST_ONLY_KEYS = {"gate", "promoted", "passed", "reason", "reported", "train", "eval", "run"}


@pytest.fixture
def private_host(tmp_path: Path) -> Iterator[Callable[[Path], HostProcess]]:
    """Starts hosts of this test's own (on the DATA_DIR given), stopped at the end."""
    started: list[HostProcess] = []

    def start(data_dir: Path) -> HostProcess:
        process = HostProcess(data_dir, log_path=tmp_path / f"host-{len(started) + 1}.log")
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()


# -- the tests -------------------------------------------------------------------------


def test_three_stages_run_end_to_end(host: HostProcess, dataset: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "curriculum.exs", dataset, tmp_path / "adapters")
    job = submit(host, "curriculum", {"config": str(config), "run": "full"})

    done = wait_for_job(host, job["id"], timeout=300)
    assert done["state"] == "succeeded", done["error"]
    assert done["attempts"] == 1

    run_dir = tmp_path / "adapters" / "full"
    for number in (1, 2, 3):
        stage_dir = run_dir / f"stage{number}"
        assert (stage_dir / "adapter_config.json").is_file(), sorted(stage_dir.iterdir())
        assert list(stage_dir.glob("*.safetensors")), sorted(stage_dir.iterdir())
        stage = metrics(stage_dir)
        assert stage["stage"] == number
        # Stage N continues stage N-1's adapter.
        assert stage["init_adapter"] == (str(run_dir / f"stage{number - 1}") if number > 1 else None)
        # One writer: metrics.json holds what the worker measured and reported, nothing of the host's.
        assert not HOST_ONLY_KEYS & stage.keys(), HOST_ONLY_KEYS & stage.keys()
        judged = verdict(run_dir, number)
        assert judged["passed"] is True, judged["gate"]
        assert judged["adapter"] == str(stage_dir)
        for key, value in judged["reported"].items():
            assert stage[key] == pytest.approx(value, rel=1e-6), key
        assert {"eval_loss_before", "eval_loss", "eval_loss_change_pct"} <= stage.keys()

    stage1 = metrics(run_dir / "stage1")
    assert stage1["eval_loss"] < stage1["eval_loss_before"], stage1

    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "succeeded"
    assert run["promoted_stage"] == 3


def test_a_failed_gate_stops_the_run_with_its_reason(host: HostProcess, dataset: Path, tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "curriculum.exs",
        dataset,
        tmp_path / "adapters",
        max_steps=2,
        gate={"min_elixir_improvement_pct": 99.0, "max_general_regression_pct": 5.0},
    )
    job = submit(host, "curriculum", {"config": str(config), "run": "gated"})

    done = wait_for_job(host, job["id"], timeout=180)
    assert done["state"] == "failed"
    assert "stage 1 gate failed" in done["error"] and "99.00%" in done["error"], done["error"]
    # A gate verdict is final: no retry.
    assert done["attempts"] == 1

    run_dir = tmp_path / "adapters" / "gated"
    stage1 = verdict(run_dir, 1)
    assert stage1["passed"] is False
    assert "Elixir eval loss improved by" in stage1["reason"]
    assert "gate" not in metrics(run_dir / "stage1")
    # The adapter is kept, not promoted, and the run went no further.
    assert (run_dir / "stage1" / "adapter_config.json").is_file()
    assert not (run_dir / "stage2").exists()
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "stopped" and run["promoted_stage"] is None


def test_an_invalid_config_is_rejected_naming_the_field(host: HostProcess, dataset: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "curriculum.exs", dataset, tmp_path / "adapters")
    config.write_text(config.read_text().replace("learning_rate: 0.003", "learning_rate: -1", 1))

    status, body = post(host, "/api/jobs", {"type": "curriculum", "args": {"config": str(config)}})
    # The worker judges the value, asked at enqueue; its message names the stage and the field.
    assert status == 400, body
    assert "stages[2] (worker): config.learning_rate must be > 0, got -1" in body["error"]["message"], body

    status, body = post(host, "/api/jobs", {"type": "curriculum", "args": {"max_steps": 0}})
    assert status == 400 and "max_steps" in body["error"]["message"], body


def test_a_killed_worker_resumes_from_its_checkpoint(
    private_host: Callable[[Path], HostProcess], dataset: Path, tmp_path: Path
) -> None:
    host = private_host(tmp_path / "data")
    config = write_config(tmp_path / "curriculum.exs", dataset, tmp_path / "adapters", stages=1, max_steps=16)
    job = submit(host, "curriculum", {"config": str(config), "run": "killed"})
    stage_dir = tmp_path / "adapters" / "killed" / "stage1"

    steps_before: list[int] = []

    def checkpointed() -> bool:
        current = get_job(host, job["id"])
        assert current["state"] not in ENDED, current
        step = train_step(current)
        if step is not None:
            steps_before.append(step)
        return step is not None and step >= 1 and bool(checkpoint_steps(stage_dir))

    poll("a training step after a checkpoint", checkpointed, timeout=180, interval=0.05, host=host)
    worker_pid = host.health()["worker"]["os_pid"]
    checkpoint = checkpoint_steps(stage_dir)[-1]
    os.kill(worker_pid, signal.SIGKILL)

    # The job keeps its latest progress until the retry reports anew, so the
    # retry's steps are those reported after the progress of attempt 1 changed.
    stale: dict[str, Any] = {}
    steps_after: list[int] = []
    resumed_at: list[int] = []

    def seen(current: dict[str, Any]) -> None:
        progress = current.get("progress") or {}
        if current["attempts"] < 2 or current["state"] != "running":
            stale["progress"] = progress
            return
        if progress == stale.get("progress"):
            return
        stale["progress"] = None
        step = train_step(current)
        if step is not None:
            steps_after.append(step)
        if "resumed at step" in (progress.get("message") or ""):
            resumed_at.append(progress["step"])

    done = wait_for_job(host, job["id"], timeout=240, seen=seen)
    assert done["state"] == "succeeded", done["error"]
    assert done["attempts"] == 2, done
    assert host.health()["worker"]["os_pid"] != worker_pid
    # The retry resumed from the checkpoint: its steps continue after it.
    assert steps_after, f"no training step seen after the kill (before: {steps_before})"
    assert min(steps_after) > checkpoint, (checkpoint, steps_before, steps_after)
    assert steps_after == sorted(steps_after)
    assert all(step >= checkpoint for step in resumed_at), (checkpoint, resumed_at)
    assert metrics(stage_dir)["steps"] == 16


def test_a_host_restart_requeues_the_running_job(
    private_host: Callable[[Path], HostProcess], dataset: Path, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    first = private_host(data_dir)
    config = write_config(tmp_path / "curriculum.exs", dataset, tmp_path / "adapters", stages=1, max_steps=16)
    job = submit(first, "train_stage", {"config": str(config), "run": "restarted", "stage": 1})

    stage_dir = tmp_path / "adapters" / "restarted" / "stage1"

    def checkpointed() -> bool:
        current = get_job(first, job["id"])
        assert current["state"] not in ENDED, current
        return train_step(current) is not None and bool(checkpoint_steps(stage_dir))

    poll("a training step after a checkpoint", checkpointed, timeout=180, interval=0.05, host=first)
    checkpoint = checkpoint_steps(stage_dir)[-1]
    first.kill()

    second = private_host(data_dir)
    # The job's stored progress is the first host's last until the second
    # host's attempt reports; steps count from the first change.
    first_seen: list[dict[str, Any]] = []
    steps: list[int] = []

    def seen(current: dict[str, Any]) -> None:
        progress = current.get("progress") or {}
        if not first_seen:
            first_seen.append(progress)
            return
        if progress == first_seen[0]:
            return
        first_seen[0] = {"changed": True}
        step = train_step(current)
        if step is not None:
            steps.append(step)

    done = wait_for_job(second, job["id"], timeout=240, seen=seen)
    assert done["state"] == "succeeded", done["error"]
    # The interrupted attempt was the host's fault, not the job's: not counted.
    assert done["attempts"] == 1, done
    # It resumed from the checkpoint the first host left.
    assert steps, "no training step seen on the second host"
    assert min(steps) > checkpoint, (checkpoint, steps)
    assert (stage_dir / "adapter_config.json").is_file()
    assert verdict(stage_dir.parent, int(stage_dir.name.removeprefix("stage")))["passed"] is True


def test_a_plan_that_cannot_finish_fails_before_training_naming_every_problem(
    host: HostProcess, dataset: Path, tmp_path: Path
) -> None:
    # Stage 3's eval set holds only replay rows (what a small corpus used to give).
    data = tmp_path / "dataset"
    shutil.copytree(dataset, data)
    replay_only = [{"text": f"def f{i}(x):\n    return x + {i}\n", "source": "replay"} for i in range(3)]
    (data / "stage3" / "eval.jsonl").write_text("".join(json.dumps(row) + "\n" for row in replay_only))
    missing_model = tmp_path / "no-such-model"

    def break_plan(config: dict[str, Any]) -> None:
        config["base_model"] = str(missing_model)
        # A gate no stage can pass: a loss cannot fall by 150%.
        config["stages"][1]["gate"] = {"min_elixir_improvement_pct": 150.0}
        # Valid for the host's config schema, refused by the worker (>= 8).
        config["stages"][0]["max_seq_length"] = 4

    config = write_config(tmp_path / "curriculum.exs", data, tmp_path / "adapters", edit=break_plan)
    started = time.monotonic()
    # The whole check runs at enqueue (the worker is up): a 400 naming every problem, no job.
    status, body = post(host, "/api/jobs", {"type": "curriculum", "args": {"config": str(config), "run": "doomed"}})
    assert time.monotonic() - started < 60, "the check took more than a minute"

    assert status == 400, body
    error = body["error"]["message"]
    assert "nothing was trained" in error, error
    # The eval set is judged by the worker, with its own row definition.
    stage3_eval = data / "stage3" / "eval.jsonl"
    assert f"stages[3] (worker): eval_path: {stage3_eval} has no Elixir rows" in error, error
    assert "stages[2].gate.min_elixir_improvement_pct is 150.0" in error, error
    # The worker's checks: the missing model for every stage, listed once, and a bad setting.
    assert f"stages[1,2,3] (worker): base_model: no model at '{missing_model}'" in error, error
    assert "stages[1] (worker): config.max_seq_length must be >= 8, got 4" in error, error
    # Nothing ran: no run directory.
    assert not (tmp_path / "adapters" / "doomed").exists()


def test_worker_crashes_in_two_stages_leave_the_next_stage_its_full_budget(
    private_host: Callable[[Path], HostProcess], dataset: Path, tmp_path: Path
) -> None:
    host = private_host(tmp_path / "data")
    config = write_config(tmp_path / "curriculum.exs", dataset, tmp_path / "adapters", max_steps=12)
    job = submit(host, "curriculum", {"config": str(config), "run": "crashes"})

    def training(stage: int) -> Callable[[], dict[str, Any] | None]:
        def check() -> dict[str, Any] | None:
            current = get_job(host, job["id"])
            assert current["state"] not in ENDED, current
            step = train_step(current)
            in_stage = (current.get("progress") or {}).get("stage") == stage
            return current if current["state"] == "running" and in_stage and step and step >= 1 else None

        return check

    killed: list[int] = []
    for stage in (1, 2):
        seen = poll(f"a training step of stage {stage}", training(stage), timeout=300, interval=0.05, host=host)
        assert seen["attempts"] == 1 and seen["unit"] == f"stage {stage}", seen
        pid = host.health()["worker"]["os_pid"]
        assert pid not in killed
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    errors: set[str] = set()
    in_stage3: list[tuple[int, int]] = []

    def seen(current: dict[str, Any]) -> None:
        if current["error"]:
            errors.add(current["error"].split(":")[0])
        if current["state"] == "running" and (current.get("progress") or {}).get("stage") == 3:
            in_stage3.append((current["attempts"], current["total_attempts"]))

    done = wait_for_job(host, job["id"], timeout=400, seen=seen)
    assert done["state"] == "succeeded", done["error"]
    # One crash in stage 1, one in stage 2: each failed attempt names its stage.
    assert {"stage 1", "stage 2"} <= errors, errors
    # Stage 3 ran on attempt 1 of its own budget, on the job's third attempt overall.
    assert in_stage3, "stage 3 was never seen running"
    assert set(in_stage3) == {(1, 3)}, in_stage3
    assert (done["attempts"], done["total_attempts"], done["unit"]) == (1, 3, "stage 3"), done
    for number in (1, 2, 3):
        assert verdict(tmp_path / "adapters" / "crashes", number)["passed"] is True
