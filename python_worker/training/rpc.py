"""The Train and Evaluate RPCs as plain functions over proto messages.

    events = train_events(request, cancel)   # raises InvalidRequest right here
    for event in events: ...                 # JobEvents until COMPLETED/FAILED/CANCELLED

Both validate eagerly, at call time, so a servicer can map InvalidRequest (a
WorkerError with INVALID_ARGUMENT) to a status before it sends anything; then
they return an iterator of `worker_pb2.JobEvent` whose last event is
COMPLETED, FAILED or CANCELLED. Job
failures (out of memory, a broken dataset row) are a FAILED event, not an
exception. Closing the iterator early cancels the job (a training job saves a
checkpoint first) and waits for it to stop. The iterators block: the servicer
advances them off the event loop (python_worker.threads.iterate_in_thread).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from python_worker.errors import WorkerError
from python_worker.evaluation.job import EvalJob, run_evaluation, validate_eval
from python_worker.evaluation.sampling import Sampling
from python_worker.generation import sampling_options
from python_worker.job_events import proto_stream
from python_worker.proto import worker_pb2
from python_worker.training.config import TrainSettings, merge, resolved, validate
from python_worker.training.errors import InvalidRequest
from python_worker.training.job import TrainJob, check_eval_set, check_general_eval, validate_job
from python_worker.training.recipe import run_training
from python_worker.training.streaming import run_streaming

_LORA_FIELDS = (
    "r",
    "alpha",
    "dropout",
    "target_modules",
    "train_embeddings",
    "embeddings_learning_rate",
)
_TRAIN_FIELDS = (
    "epochs", "max_steps", "learning_rate", "batch_size", "gradient_accumulation_steps",
    "max_seq_length", "warmup_ratio", "max_grad_norm", "save_steps", "eval_steps",
    "early_stopping_patience", "early_stopping_threshold", "quantization",
    "gradient_checkpointing", "packing", "regularizer", "regularizer_weight", "seed",
    "save_minutes",
)  # fmt: skip


def settings_from_proto(config: worker_pb2.TrainConfig) -> TrainSettings:
    """Defaults overridden by the request's non-zero fields (proto3: zero means default)."""
    overrides: dict = {name: getattr(config, name) for name in _TRAIN_FIELDS}
    # float32 proto fields come back as doubles like 0.05000000074505806; round them
    # back to what the sender most likely wrote.
    for name in (
        "warmup_ratio",
        "max_grad_norm",
        "early_stopping_threshold",
        "regularizer_weight",
    ):
        overrides[name] = float(f"{overrides[name]:.7g}")
    if config.HasField("lora"):
        lora = {name: getattr(config.lora, name) for name in _LORA_FIELDS}
        lora["target_modules"] = list(lora["target_modules"])
        for name in ("alpha", "dropout"):
            lora[name] = float(f"{lora[name]:.7g}")
        overrides["lora"] = lora
    settings = merge(TrainSettings(), overrides)
    # proto3 `optional` fields: presence, not value, says whether the sender set
    # them, so an explicit 0 (no warmup, no dropout) is kept.
    if config.HasField("warmup_ratio"):
        settings.warmup_ratio = float(f"{config.warmup_ratio:.7g}")
    if config.HasField("lora") and config.lora.HasField("dropout"):
        settings.lora.dropout = float(f"{config.lora.dropout:.7g}")
    return settings


def job_from_proto(req: worker_pb2.TrainRequest) -> TrainJob:
    return TrainJob(
        base_model=req.base_model,
        dataset_dir=req.dataset_dir,
        stage=req.stage,
        output_dir=req.output_dir,
        settings=settings_from_proto(req.config),
        job_id=req.job_id,
        resume=req.resume,
        init_adapter=req.init_adapter,
        general_eval_path=req.general_eval_path,
        eval_path=req.eval_path,
    )


def train_events(req: worker_pb2.TrainRequest, cancel: threading.Event) -> Iterator[worker_pb2.JobEvent]:
    """Validate now (InvalidRequest), then stream the stage's training events.

    With `validate_only`, nothing is trained: one COMPLETED event, or InvalidRequest.
    """
    if req.validate_only:
        return iter([_validated(req)])
    job = validate_job(job_from_proto(req))
    return proto_stream(
        run_streaming(lambda emit, c: run_training(job, emit, c), cancel, f"train-{req.job_id}"),
        req.job_id,
    )


def _validated(req: worker_pb2.TrainRequest) -> worker_pb2.JobEvent:
    """COMPLETED when Train would accept `req`; else InvalidRequest naming every problem found, one a line.

    validate_job stops at its first problem, and the paths come before the
    settings, so the settings and the eval sets are also checked on their own:
    a missing base model hides neither a bad learning rate nor an eval set
    without Elixir rows.
    """
    problems: list[str] = []
    job = job_from_proto(req)
    checks = (
        lambda: validate_job(job),
        lambda: validate(resolved(job.settings, job.stage), job.stage),
        lambda: check_eval_set(job),
        lambda: check_general_eval(job),
    )
    for check in checks:
        try:
            check()
        except InvalidRequest as exc:
            if str(exc) not in problems:
                problems.append(str(exc))
    if problems:
        raise InvalidRequest("\n".join(problems))
    return worker_pb2.JobEvent(
        job_id=req.job_id,
        kind=worker_pb2.JobEvent.COMPLETED,
        phase="validate",
        message="the request is valid; nothing was trained (validate_only)",
    )


def evaluate_events(req: worker_pb2.EvaluateRequest, cancel: threading.Event) -> Iterator[worker_pb2.JobEvent]:
    """Validate now (InvalidRequest), then stream eval events (loss, FIM, execution)."""
    try:
        options = sampling_options(req.params)
    except WorkerError as exc:
        raise InvalidRequest(exc.message) from None
    job = validate_eval(
        EvalJob(
            model=req.model,
            adapter=req.adapter,
            loss_datasets=list(req.loss_datasets),
            output_path=req.output_path,
            job_id=req.job_id,
            max_tokens=req.max_loss_tokens,
            completions_path=req.completions_path,
            samples=req.samples_per_problem,
            max_problems=req.max_problems,
            sampling=Sampling(
                max_tokens=options.max_tokens or Sampling().max_tokens,
                temperature=options.temperature,
                top_p=options.top_p,
                seed=options.seed,
            ),
            timeout_s=req.timeout_s,
            max_workers=req.max_workers,
            output_dir=req.output_dir,
            fim_datasets=list(req.fim_datasets),
            max_fim_examples=req.max_fim_examples,
            metrics_path=req.metrics_path,
        ),
        list(req.benchmarks),
    )
    return proto_stream(
        run_streaming(lambda emit, c: run_evaluation(job, emit, c), cancel, f"eval-{req.job_id}"),
        req.job_id,
    )
