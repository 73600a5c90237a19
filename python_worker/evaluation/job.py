"""The Evaluate job: eval loss / perplexity of a model (+ adapter) on JSONL files.

The model is loaded unquantised in the device's compute dtype, with the
adapter applied unmerged: how a server runs it. Rows are tokenized exactly as
for training (loss only on assistant turns and FIM middles), so the numbers are
comparable with the eval losses in a stage's metrics.json.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from python_worker.evaluation.loss import eval_loss
from python_worker.job_events import (
    CANCELLED,
    COMPLETED,
    FAILED,
    LOG,
    PROGRESS,
    Emit,
    Event,
)
from python_worker.training import checkpoints
from python_worker.training import model as model_mod
from python_worker.training.data import DEFAULT_EVAL_TOKENS, DatasetError, RowEncoder, encode_files
from python_worker.training.errors import Cancelled, InvalidRequest
from python_worker.training.job import model_config_path, model_context_length

DEFAULT_MAX_LEN = 2048
DEFAULT_BATCH = 4


@dataclass
class EvalJob:
    model: str
    adapter: str = ""
    loss_datasets: list[str] = field(default_factory=list)
    output_path: str = ""
    job_id: str = ""
    max_seq_length: int = 0
    batch_size: int = DEFAULT_BATCH
    # Per loss dataset, in whole rows: 0 = DEFAULT_EVAL_TOKENS, -1 = all rows;
    # after validation, None means all rows.
    max_tokens: int | None = 0


def validate_eval(job: EvalJob, benchmarks: list[str] | None = None) -> EvalJob:
    if benchmarks:
        raise InvalidRequest(
            "benchmarks are not supported yet: pass loss_datasets for eval loss "
            "(pass@k scoring is not implemented in this worker)"
        )
    if not job.model:
        raise InvalidRequest("model is required (a model directory)")
    cfg = model_config_path(job.model)
    if cfg is None:
        raise InvalidRequest(f"model: no model at {job.model!r} (config.json missing)")
    if job.adapter and not (Path(job.adapter) / "adapter_config.json").is_file():
        raise InvalidRequest(f"adapter: {job.adapter} is not an adapter directory")
    if not job.loss_datasets:
        raise InvalidRequest("loss_datasets: give at least one JSONL file to compute eval loss on")
    for i, path in enumerate(job.loss_datasets):
        if not Path(path).is_file():
            raise InvalidRequest(f"loss_datasets[{i}]: {path} does not exist")
    if job.output_path and Path(job.output_path).is_dir():
        raise InvalidRequest(f"output_path: {job.output_path} is a directory; give a file path")
    context = model_context_length(cfg) or DEFAULT_MAX_LEN
    max_len = job.max_seq_length or min(DEFAULT_MAX_LEN, context)
    if max_len > context:
        raise InvalidRequest(f"max_seq_length must be <= {context}, got {max_len}")
    if job.max_tokens is not None and job.max_tokens < -1:
        raise InvalidRequest(f"max_loss_tokens must be -1 (all), 0 (default) or positive, got {job.max_tokens}")
    max_tokens = None if job.max_tokens in (None, -1) else job.max_tokens or DEFAULT_EVAL_TOKENS
    return EvalJob(
        job.model, job.adapter, list(job.loss_datasets), job.output_path, job.job_id, max_len,
        job.batch_size or DEFAULT_BATCH, max_tokens,
    )  # fmt: skip


def dataset_names(paths: list[str]) -> list[str]:
    """Short unique names: "stage1/eval" for .../stage1/eval.jsonl."""
    names = []
    for path in paths:
        p = Path(path)
        base = f"{p.parent.name}/{p.stem}" if p.parent.name else p.stem
        name, n = base, 2
        while name in names:
            name, n = f"{base}#{n}", n + 1
        names.append(name)
    return names


def run_evaluation(job: EvalJob, emit: Emit, cancel: threading.Event) -> str:
    started = time.monotonic()

    def ms() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        where = model_mod.placement()
        emit(
            Event(
                LOG,
                "load",
                f"loading {job.model}" + (f" + {job.adapter}" if job.adapter else ""),
            )
        )
        tokenizer = model_mod.load_tokenizer(job.model)
        model = model_mod.load_for_eval(job.model, job.adapter, where)
        encoder = RowEncoder(tokenizer, job.max_seq_length)
        names = dataset_names(job.loss_datasets)
        metrics: dict[str, float] = {}
        report: dict[str, dict] = {}
        total_loss, total_tokens = 0.0, 0
        for i, (name, path) in enumerate(zip(names, job.loss_datasets, strict=True)):
            if cancel.is_set():
                raise Cancelled("cancelled")
            emit(
                Event(
                    PROGRESS,
                    "eval",
                    f"{name}: tokenizing",
                    step=i,
                    total_steps=len(names),
                    elapsed_ms=ms(),
                )
            )
            cols, stats = encode_files([Path(path)], encoder, max_tokens=job.max_tokens)
            result = eval_loss(model, cols, job.batch_size, tokenizer.pad_token_id, cancel)
            metrics[f"{name}.loss"] = result.loss
            metrics[f"{name}.perplexity"] = result.perplexity
            metrics[f"{name}.tokens"] = float(result.tokens)
            report[name] = {
                "path": path,
                "loss": result.loss,
                "perplexity": result.perplexity,
                "tokens": result.tokens,
                "rows": stats.rows,
                "sequences": result.sequences,
                "max_tokens": job.max_tokens,
            }
            if result.tokens:
                total_loss += result.loss * result.tokens
                total_tokens += result.tokens
            emit(
                Event(
                    PROGRESS,
                    "eval",
                    f"{name}: loss {result.loss:.4f} over {result.tokens} tokens",
                    step=i + 1,
                    total_steps=len(names),
                    elapsed_ms=ms(),
                    metrics={k: v for k, v in metrics.items() if k.startswith(name + ".")},
                )
            )
        if total_tokens:
            metrics["loss"] = total_loss / total_tokens
            metrics["perplexity"] = math.exp(min(metrics["loss"], 50.0))
            metrics["tokens"] = float(total_tokens)
        if job.output_path:
            checkpoints.write_json_atomic(
                Path(job.output_path),
                {
                    "model": job.model,
                    "adapter": job.adapter or None,
                    "datasets": report,
                    "loss": metrics.get("loss"),
                    "perplexity": metrics.get("perplexity"),
                    "tokens": total_tokens,
                },
            )
        finite_metrics = {k: v for k, v in metrics.items() if math.isfinite(v)}
        emit(
            Event(
                COMPLETED,
                "eval",
                f"eval loss {metrics.get('loss', float('nan')):.4f} on {len(names)} dataset(s)",
                step=len(names),
                total_steps=len(names),
                elapsed_ms=ms(),
                metrics=finite_metrics,
                artifact_path=job.output_path,
            )
        )
        return COMPLETED
    except Cancelled as exc:
        emit(Event(CANCELLED, "eval", str(exc), elapsed_ms=ms()))
        return CANCELLED
    except DatasetError as exc:
        emit(Event(FAILED, "eval", str(exc), elapsed_ms=ms()))
        return FAILED
    except Exception as exc:  # noqa: BLE001 - a job ends with an event, never a stuck stream
        from python_worker.training.recipe import is_oom

        prefix = "out of memory: lower batch size or sequence length" if is_oom(exc) else type(exc).__name__
        emit(Event(FAILED, "eval", f"{prefix}: {exc}", elapsed_ms=ms()))
        return FAILED
