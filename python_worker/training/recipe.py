"""One curriculum stage, as a recipe: setup, train, save_checkpoint, cleanup.

A single class with no base class (torchtune's recipe shape): the steps read
top to bottom and `run_training` drives them. The job has been validated
already (job.validate_job); everything here may load models and take time.

Periodic, resumable checkpoints are the trainer's (see trainer.py and
checkpoints.py); `save_checkpoint` writes the stage's deliverable:

    output_dir/adapter_config.json, adapter_model.safetensors   the LoRA adapter
    output_dir/merged/            a merged full model, only when embeddings were
                                  trained (vLLM cannot serve LoRA on them)
    output_dir/adapter_meta.json  what the artifact is and how to serve it
    output_dir/metrics.json       what the stage did and measured: eval loss on the
                                  Elixir rows and on general code (the forgetting
                                  measure), before and after training, and their
                                  changes. This recipe is its only writer; the host
                                  gets the same numbers in the COMPLETED event and
                                  keeps its gate verdict in its own records.
    output_dir/tensorboard/       TensorBoard event files
    output_dir/checkpoints/       resumable state

Between stages the same adapter continues (init_adapter is loaded trainable)
rather than being merged into the base and a new one started: merging into an
NF4 base means dequantise, add, requantise, which adds quantisation error at
every stage and leaves a full model per stage instead of a small adapter; the
forgetting guard also needs the previous stage's weights as its anchor, which
is exactly the continued adapter's starting point.
"""

from __future__ import annotations

import gc
import json
import logging
import math
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from python_worker.evaluation.loss import batches, eval_loss
from python_worker.job_events import (
    CANCELLED,
    COMPLETED,
    FAILED,
    LOG,
    METRICS,
    PROGRESS,
    Emit,
    Event,
    finite,
)
from python_worker.training import checkpoints
from python_worker.training import guard as guard_mod
from python_worker.training import model as model_mod
from python_worker.training import trainer as trainer_mod
from python_worker.training.data import (
    DatasetError,
    DataStats,
    RowEncoder,
    encode_files,
    is_replay,
)
from python_worker.training.errors import Cancelled
from python_worker.training.job import TrainJob, eval_files

log = logging.getLogger(__name__)

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def is_oom(exc: BaseException) -> bool:
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError | MemoryError) and (
        "out of memory" in text or "can't allocate memory" in text or isinstance(exc, MemoryError)
    )


def _pct(before: float | None, after: float | None) -> float | None:
    if before is None or after is None or math.isnan(before) or math.isnan(after) or not before:
        return None
    return (after - before) / before * 100.0


class TrainRecipe:
    def __init__(self, job: TrainJob, emit: Emit, cancel: threading.Event) -> None:
        self.job = job
        self.s = job.settings
        self.out = job.out
        self.emit = emit
        self.cancel = cancel
        self.phase = f"stage{job.stage}"
        self.started = time.monotonic()
        self.where = model_mod.placement()
        self.model: Any = None
        self.tokenizer: Any = None
        self.trainer: Any = None
        self.callback: trainer_mod.JobCallback | None = None
        self.guard: guard_mod.ForgettingGuard | None = None
        self.resume_from: Path | None = None
        self.eval_cols: dict[str, list[list[int]]] | None = None
        self.general_cols: dict[str, list[list[int]]] | None = None
        self.general_source: str | None = None
        self.baseline: dict[str, float] = {}
        self.stats: dict[str, DataStats] = {}
        self.train_result: Any = None

    # -- helpers ---------------------------------------------------------------
    def _check_cancel(self) -> None:
        if self.cancel.is_set():
            raise Cancelled("cancelled before training started")

    def _elapsed_ms(self) -> int:
        return int((time.monotonic() - self.started) * 1000)

    def _log(self, message: str, phase: str | None = None, **metrics: float) -> None:
        self.emit(
            Event(
                LOG,
                phase or self.phase,
                message,
                elapsed_ms=self._elapsed_ms(),
                metrics=finite(metrics),
            )
        )

    def _encode(
        self,
        name: str,
        paths: list[Path],
        limit: int | None,
        max_tokens: int | None = None,
        keep: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, list[list[int]]]:
        encoder = RowEncoder(self.tokenizer, self.s.max_seq_length)

        def progress(stats: DataStats) -> None:
            self._check_cancel()
            self.emit(
                Event(
                    PROGRESS,
                    "data",
                    f"{name}: {stats.rows} rows tokenized",
                    elapsed_ms=self._elapsed_ms(),
                    metrics=stats.as_metrics(""),
                )
            )

        try:
            columns, stats = encode_files(paths, encoder, limit, progress, max_tokens=max_tokens, keep=keep)
        except UnicodeDecodeError as exc:
            raise DatasetError(f"{name}: not UTF-8 ({exc})") from None
        self.stats[name] = stats
        self.emit(
            Event(
                METRICS,
                "data",
                f"{name}: {stats.rows} rows -> {stats.sequences} sequences, {stats.tokens} tokens",
                elapsed_ms=self._elapsed_ms(),
                metrics=stats.as_metrics(f"{name}_"),
            )
        )
        return columns

    def _losses(self, when: str) -> dict[str, float]:
        """Eval loss on the stage's eval split and on general code, keyed for metrics.json."""
        suffix = "_before" if when == "before" else ""
        out: dict[str, float] = {}
        pad = self.tokenizer.pad_token_id
        for key, cols in (
            ("eval", self.eval_cols),
            ("general_eval", self.general_cols),
        ):
            if cols is None or not cols["input_ids"]:
                continue
            result = eval_loss(self.model, cols, self.s.batch_size, pad, self.cancel)
            out[f"{key}_loss{suffix}"] = result.loss
            out[f"{key}_perplexity{suffix}"] = result.perplexity
            out[f"{key}_tokens"] = float(result.tokens)
        return out

    # -- the protocol ------------------------------------------------------------
    def setup(self) -> None:
        from datasets import Dataset
        from datasets.utils.logging import disable_progress_bar

        disable_progress_bar()  # per-map progress bars on stderr say nothing our events don't

        job, s = self.job, self.s
        self.out.mkdir(parents=True, exist_ok=True)
        checkpoints.root(self.out).mkdir(exist_ok=True)
        self.resume_from = checkpoints.latest(self.out) if job.resume else None
        if job.resume and self.resume_from is None:
            self._log("resume requested but no complete checkpoint exists; starting fresh")
        self._log(f"device {self.where.device}, compute dtype {self.where.dtype_name}, quantization {s.quantization}")

        self.tokenizer = model_mod.load_tokenizer(job.base_model)
        train_cols = self._encode("train", [job.split_path("train")], None)
        if not train_cols["input_ids"]:
            raise DatasetError(f"{job.split_path('train')}: no row yields a trainable sequence")
        # The eval set's replay rows are general code: they must not count as
        # Elixir, and without a general_eval_path they are the forgetting measure.
        eval_path = job.eval_set
        if eval_path.is_file():
            self.eval_cols = self._encode(
                "eval", [eval_path], s.max_eval_rows, s.max_eval_tokens, keep=lambda row: not is_replay(row)
            )
        else:
            self._log(f"{eval_path} is missing: no eval loss, no early stopping")
        if job.general_eval_path:
            self.general_source = job.general_eval_path
            self.general_cols = self._encode(
                "general_eval", eval_files(job.general_eval_path), s.max_eval_rows, s.max_eval_tokens
            )
        elif eval_path.is_file():
            self.general_source = f"{eval_path} (replay rows)"
            self.general_cols = self._encode(
                "general_eval", [eval_path], s.max_eval_rows, s.max_eval_tokens, keep=is_replay
            )
        self._check_cancel()

        self.emit(
            Event(
                PROGRESS,
                "load",
                f"loading {job.base_model}",
                elapsed_ms=self._elapsed_ms(),
            )
        )
        from transformers import set_seed

        set_seed(s.seed)  # the LoRA init draws from the global RNG: same seed, same adapter
        base = model_mod.load_base(job.base_model, s.quantization, self.where)
        self.model = model_mod.attach_adapter(base, s, job.init_adapter)
        trainable, total = model_mod.count_parameters(self.model)
        self._log(
            f"model loaded: {trainable:,} trainable of {total:,} parameters"
            + (f", continuing adapter {job.init_adapter}" if job.init_adapter else ""),
            phase="load",
            trainable_parameters=trainable,
            total_parameters=total,
        )
        self._check_cancel()

        self._setup_baseline()
        self._check_cancel()

        self.callback = trainer_mod.JobCallback(
            self.emit,
            self.cancel,
            self.phase,
            s.early_stopping_patience if self.eval_cols else -1,
            s.early_stopping_threshold,
            s.save_minutes,
        )
        eval_ds = Dataset.from_dict(self.eval_cols) if self.eval_cols and self.eval_cols["input_ids"] else None
        self.trainer = trainer_mod.build(
            self.model,
            self.tokenizer,
            Dataset.from_dict(train_cols),
            eval_ds,
            s,
            self.out,
            self.where,
            [self.callback],
        )
        # After the trainer exists: it may cast the trainable weights, and the guard
        # must anchor the weights exactly as training will start from them.
        self._setup_guard()
        self.trainer.guard = self.guard

    def _setup_baseline(self) -> None:
        path = checkpoints.baseline_path(self.out)
        if self.job.resume and path.is_file():
            self.baseline = json.loads(path.read_text(encoding="utf-8"))
            self._log("baseline eval losses loaded from the first attempt", phase="eval")
            return
        self.emit(
            Event(
                PROGRESS,
                "eval",
                "measuring eval loss before training",
                elapsed_ms=self._elapsed_ms(),
            )
        )
        self.baseline = self._losses("before")
        checkpoints.write_json_atomic(path, self.baseline)
        self.emit(
            Event(
                METRICS,
                "eval",
                "eval loss before training",
                elapsed_ms=self._elapsed_ms(),
                metrics=finite(self.baseline),
            )
        )

    def _setup_guard(self) -> None:
        s = self.s
        if s.regularizer == "none":
            return
        path = checkpoints.guard_path(self.out)
        if self.job.resume and path.is_file():
            self.guard = guard_mod.load(self.model, path, s.regularizer, s.regularizer_weight)
            self._log(f"{s.regularizer} reference weights loaded from the stage's start")
            return
        self.guard = guard_mod.snapshot(self.model, s.regularizer, s.regularizer_weight)
        if s.regularizer == "ewc":
            # An eval split without replay rows encodes to empty columns, not None:
            # then the train split's replay rows are the general code.
            has_general = bool(self.general_cols and self.general_cols["input_ids"])
            cols = self.general_cols if has_general else self._replay_columns()
            if not cols or not cols["input_ids"]:
                raise DatasetError(
                    "regularizer 'ewc' needs general code for its Fisher estimate: set "
                    "general_eval_path, or include replay rows (source 'replay') in the train split"
                )
            limited = {k: v[: s.ewc_fisher_rows] for k, v in cols.items()}
            device = self.guard.params[0].device
            data = batches(limited, 1, self.tokenizer.pad_token_id, device)
            self.guard.fisher = guard_mod.estimate_fisher(self.model, data, self.guard.params)
        self.guard.save(path)
        self._log(
            f"forgetting guard: {s.regularizer}, weight {s.regularizer_weight:g}, "
            f"{sum(p.numel() for p in self.guard.params):,} weights anchored"
        )

    def _replay_columns(self) -> dict[str, list[list[int]]] | None:
        from python_worker.training.data import read_jsonl

        encoder = RowEncoder(self.tokenizer, self.s.max_seq_length)
        stats = DataStats()
        cols: dict[str, list[list[int]]] = {"input_ids": [], "labels": []}
        for row in read_jsonl(self.job.split_path("train")):
            if not is_replay(row):
                continue
            for seq in encoder.encode(row, stats):
                cols["input_ids"].append(seq.input_ids)
                cols["labels"].append(seq.labels)
            if len(cols["input_ids"]) >= self.s.ewc_fisher_rows:
                break
        return cols

    def train(self) -> None:
        resume = str(self.resume_from) if self.resume_from else None
        if resume:
            self._log(f"resuming from {resume}")
        self.train_result = self.trainer.train(resume_from_checkpoint=resume)

    @property
    def cancelled(self) -> bool:
        return bool(self.callback and self.callback.cancelled)

    def save_checkpoint(self) -> dict[str, Any]:
        """Write the stage's adapter, merged model (if any), metadata and metrics."""
        self.emit(
            Event(
                PROGRESS,
                "eval",
                "measuring eval loss after training",
                elapsed_ms=self._elapsed_ms(),
            )
        )
        after = self._losses("after")
        self.emit(Event(PROGRESS, "export", f"writing {self.out}", elapsed_ms=self._elapsed_ms()))
        merged = self._export_adapter()
        metrics = self._metrics(after, merged)
        checkpoints.write_json_atomic(self.out / "adapter_meta.json", self._meta(merged))
        checkpoints.write_json_atomic(self.out / "metrics.json", metrics)
        return metrics

    def _export_adapter(self) -> bool:
        staging = Path(tempfile.mkdtemp(prefix=".export-", dir=self.out))
        try:
            self.trainer.model.save_pretrained(str(staging))
            for name in ADAPTER_FILES:
                os.replace(staging / name, self.out / name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        merged = model_mod.adapter_has_embeddings(self.out)
        if merged:
            self._export_merged()
        return merged

    def _export_merged(self) -> None:
        """Base (full precision) + adapter, merged: the servable form when embeddings changed.

        The adapter was trained against the NF4 base, so the merged weights differ
        from what training saw by the base's quantisation error: the usual QLoRA
        merge trade-off, and the only form vLLM can serve for these layers.
        """
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        self._log(
            "embeddings were trained: writing a merged model for serving",
            phase="export",
        )
        dtype = torch.bfloat16 if self.where.dtype == torch.bfloat16 else torch.float32
        base = AutoModelForCausalLM.from_pretrained(self.job.base_model, dtype=dtype)
        merged = PeftModel.from_pretrained(base, str(self.out)).merge_and_unload()
        final = self.out / "merged"
        staging = Path(tempfile.mkdtemp(prefix=".merged-", dir=self.out))
        try:
            merged.save_pretrained(str(staging))
            self.tokenizer.save_pretrained(str(staging))
            staging.chmod(0o755)
            if final.exists():
                shutil.rmtree(final)
            os.rename(staging, final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        del merged, base
        gc.collect()

    def _meta(self, merged: bool) -> dict[str, Any]:
        trained = ["lora"] + (["embeddings"] if merged else [])
        return {
            "format": 1,
            "job_id": self.job.job_id,
            "base_model": self.job.base_model,
            "stage": self.job.stage,
            "init_adapter": self.job.init_adapter or None,
            "quantization": self.s.quantization,
            "lora": asdict(self.s.lora),
            "trained": trained,
            # vLLM cannot apply LoRA to embed_tokens/lm_head of Qwen2-family models, so an
            # adapter that carries trained embeddings is served as the merged model.
            "merged": merged,
            "serving_artifact": "merged" if merged else "adapter",
            "merged_model_path": "merged" if merged else None,
            "steps": int(self.trainer.state.global_step),
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }

    def _metrics(self, after: dict[str, float], merged: bool) -> dict[str, Any]:
        state = self.trainer.state
        train_losses = [e["loss"] for e in state.log_history if "loss" in e and "eval_loss" not in e]
        eval_losses = [e["eval_loss"] for e in state.log_history if "eval_loss" in e]
        callback = self.callback
        metrics: dict[str, Any] = {
            "stage": self.job.stage,
            "base_model": self.job.base_model,
            "dataset_dir": self.job.dataset_dir,
            "init_adapter": self.job.init_adapter or None,
            "adapter": str(self.out),
            "eval_set": str(self.job.eval_set),
            "general_eval_set": self.general_source,
            "steps": int(state.global_step),
            "max_steps": int(state.max_steps),
            "epoch": float(state.epoch or 0.0),
            "train_loss_first": train_losses[0] if train_losses else None,
            "train_loss_last": train_losses[-1] if train_losses else None,
            "best_eval_loss_during_training": min(eval_losses) if eval_losses else None,
            "early_stopped": bool(callback and callback.early_stop_reason),
            "early_stop_reason": callback.early_stop_reason if callback else "",
            "merged": merged,
            "regularizer": self.s.regularizer,
            "regularizer_weight": self.s.regularizer_weight,
            "runtime_s": round(time.monotonic() - self.started, 3),
            "config": asdict(self.s),
            "data": {name: st.as_metrics("") for name, st in self.stats.items()},
            **self.baseline,
            **after,
        }
        metrics["eval_loss_change_pct"] = _pct(self.baseline.get("eval_loss_before"), after.get("eval_loss"))
        metrics["general_eval_loss_change_pct"] = _pct(
            self.baseline.get("general_eval_loss_before"),
            after.get("general_eval_loss"),
        )
        return metrics

    def cleanup(self) -> None:
        self.trainer = None
        self.model = None
        self.guard = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def run_training(job: TrainJob, emit: Emit, cancel: threading.Event) -> str:
    """Run a validated job to its end, emitting events; returns the final event kind.

    Never raises for job failures: they end as a FAILED event with the reason.
    """
    recipe = TrainRecipe(job, emit, cancel)
    try:
        recipe.setup()
        recipe.train()
        if recipe.cancelled:
            last = checkpoints.latest(job.out)
            emit(
                Event(
                    CANCELLED,
                    recipe.phase,
                    f"cancelled; checkpoint saved at step {recipe.trainer.state.global_step}",
                    step=recipe.trainer.state.global_step,
                    total_steps=recipe.trainer.state.max_steps,
                    elapsed_ms=recipe._elapsed_ms(),
                    artifact_path=str(last) if last else "",
                )
            )
            return CANCELLED
        if recipe.callback and recipe.callback.early_stop_reason:
            recipe._log(f"early stop: {recipe.callback.early_stop_reason}")
        metrics = recipe.save_checkpoint()
        numeric = finite({k: v for k, v in metrics.items() if not isinstance(v, dict)})
        emit(
            Event(
                COMPLETED,
                recipe.phase,
                f"stage {job.stage} done after {metrics['steps']} steps"
                + (f" (early stop: {metrics['early_stop_reason']})" if metrics["early_stopped"] else ""),
                step=metrics["steps"],
                total_steps=metrics["max_steps"],
                elapsed_ms=recipe._elapsed_ms(),
                metrics=numeric,
                artifact_path=str(job.out),
            )
        )
        return COMPLETED
    except Cancelled as exc:
        emit(Event(CANCELLED, recipe.phase, str(exc), elapsed_ms=recipe._elapsed_ms()))
        return CANCELLED
    except BaseException as exc:
        step = recipe.trainer.state.global_step if recipe.trainer is not None else 0
        if is_oom(exc):
            message = (
                f"out of memory at step {step} on {recipe.where.device}: lower batch_size or "
                "max_seq_length, raise gradient_accumulation_steps, or enable "
                f"gradient_checkpointing ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
            )
        else:
            message = f"{type(exc).__name__}: {exc}"
            log.exception("training job failed")
        emit(
            Event(
                FAILED,
                recipe.phase,
                message,
                step=step,
                elapsed_ms=recipe._elapsed_ms(),
            )
        )
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        return FAILED
    finally:
        recipe.cleanup()
