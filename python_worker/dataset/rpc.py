"""The BuildDataset RPC as a plain generator of JobEvents (the servicer stays thin).

    events = build_dataset_events(request, cancel)   # raises InvalidRequest now
    for event in events: ...                           # PROGRESS/LOG..., then one of
                                                       # COMPLETED, FAILED, CANCELLED

The request is validated eagerly, when this function is called, so a missing
input directory, a broken manifest or a malformed config_json raises
InvalidRequest (a ValueError, and a WorkerError with INVALID_ARGUMENT) before
the stream opens. The build itself runs on a thread; closing the generator
(the client went away) sets `cancel` and waits for the build to stop.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from python_worker.dataset.build import BuildRequest, BuildResult, Plan, prepare, run
from python_worker.dataset.config import parse_config
from python_worker.job_events import CANCELLED, COMPLETED, FAILED, Event, ms, proto_stream
from python_worker.jobs import Cancelled
from python_worker.proto import worker_pb2
from python_worker.threads import run_streaming


def request_from_proto(req: worker_pb2.BuildDatasetRequest) -> BuildRequest:
    config = parse_config(req.config_json, fmt="json", origin="config_json")
    return BuildRequest(
        inputs=list(req.inputs),
        out_dir=req.out_dir,
        config=config,
        # Proto zero means "server default", which is the config's seed.
        seed=req.seed or None,
        eval_files=list(req.eval_files),
        job_id=req.job_id,
    )


def build_dataset_events(req: worker_pb2.BuildDatasetRequest, cancel: threading.Event) -> Iterator[worker_pb2.JobEvent]:
    plan = prepare(request_from_proto(req))
    return proto_stream(_events(plan, cancel), req.job_id)


def _events(plan: Plan, cancel: threading.Event) -> Iterator[Event]:
    # run_streaming sets `cancel` and waits for the build when the consumer closes the stream early.
    try:
        result = yield from run_streaming(lambda emit, c: run(plan, emit, c), cancel, f"build-dataset-{plan.job_id}")
    except GeneratorExit:  # the consumer closed the stream: nothing more to send
        raise
    except Cancelled as error:
        yield Event(CANCELLED, "cancelled", str(error))
        return
    except BaseException as error:  # noqa: BLE001 -- reported as an event, never lost
        yield Event(FAILED, "failed", f"{type(error).__name__}: {error}")
        return
    assert isinstance(result, BuildResult)
    yield Event(
        COMPLETED,
        "done",
        f"dataset written to {result.out_dir}",
        step=1,
        total_steps=1,
        elapsed_ms=ms(result.elapsed_s),
        metrics=_summary(result.manifest),
        artifact_path=str(result.out_dir),
    )


def _summary(m: dict) -> dict[str, float]:
    """Rows and tokens per stage and split, and file counts, from the manifest."""
    metrics = {
        f"{stage}_{sp}_{what}": float(v[what])
        for stage, splits in m["stages"].items()
        for sp, v in splits.items()
        for what in ("rows", "tokens")
    }
    metrics["files_scanned"] = float(m["files"]["scanned"])
    metrics["files_kept"] = float(m["files"]["kept"])
    metrics["rows_written"] = float(sum(v["rows"] for splits in m["stages"].values() for v in splits.values()))
    return metrics
