"""The Evaluate job: what a model (+ adapter) is worth, measured three ways.

* eval loss / perplexity on JSONL files (`loss_datasets`);
* FIM exact match and edit similarity on held-out FIM rows (`fim_datasets`);
* execution: completions of a problem set (`benchmarks`, one set) run in the
  sandbox against the set's tests, scored by pass@k and compile rate; the
  completions are generated (N per problem, greedy when N is 1) or read from
  `completions_path` (then no model is loaded at all).

The model is loaded unquantised in the device's compute dtype, with the
adapter applied unmerged: how a server runs it. Rows are tokenized exactly as
for training (loss only on assistant turns and FIM middles), so the numbers are
comparable with the eval losses in a stage's metrics.json.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from python_worker.evaluation import execute, fim_eval, problems, scoring
from python_worker.evaluation.loss import eval_loss
from python_worker.evaluation.sampling import Sampling, complete
from python_worker.evaluation.sandbox import Limits, Sandbox
from python_worker.job_events import (
    CANCELLED,
    COMPLETED,
    FAILED,
    LOG,
    PROGRESS,
    Emit,
    Event,
)
from python_worker.serving.base import TextPrompt
from python_worker.serving.prompts import detect_fim
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
    # Execution: one problem set (a shipped name or a JSONL file).
    benchmark: str = ""
    completions_path: str = ""
    samples: int = 0  # per problem; 0 = 1
    max_problems: int = 0  # 0 = all
    sampling: Sampling = field(default_factory=Sampling)
    timeout_s: float = 0.0  # 0 = Limits().timeout_s
    max_workers: int = 0  # 0 = CPU cores
    output_dir: str = ""
    fim_datasets: list[str] = field(default_factory=list)
    max_fim_examples: int = 0  # 0 = fim_eval.DEFAULT_FIM_EXAMPLES
    context_length: int = 0
    metrics_path: str = ""  # a stage's metrics.json to add the results to


def validate_eval(job: EvalJob, benchmarks: list[str] | None = None) -> EvalJob:
    """The job with defaults filled in, or InvalidRequest naming the field at fault."""
    benchmarks = list(benchmarks or ([job.benchmark] if job.benchmark else []))
    if len(benchmarks) > 1:
        raise InvalidRequest(f"benchmarks: give one problem set per job, got {len(benchmarks)}")
    benchmark = ""
    if benchmarks:
        try:
            benchmark = str(problems.resolve(benchmarks[0]))
        except problems.ProblemError as exc:
            raise InvalidRequest(str(exc)) from None
    if job.completions_path and not benchmark:
        raise InvalidRequest("completions_path: give the problem set (benchmarks) the completions answer")
    if job.completions_path and not Path(job.completions_path).is_file():
        raise InvalidRequest(f"completions_path: {job.completions_path} does not exist")
    needs_model = bool(job.loss_datasets or job.fim_datasets or (benchmark and not job.completions_path))
    if not (job.loss_datasets or job.fim_datasets or benchmark):
        if not job.model:
            raise InvalidRequest("model is required (a model directory)")
        raise InvalidRequest(
            "loss_datasets: give at least one JSONL file to compute eval loss on "
            "(or fim_datasets, or a problem set in benchmarks)"
        )
    context = 0
    if needs_model or job.model:
        if not job.model:
            raise InvalidRequest("model is required (a model directory)")
        cfg = model_config_path(job.model)
        if cfg is None:
            raise InvalidRequest(f"model: no model at {job.model!r} (config.json missing)")
        context = model_context_length(cfg) or DEFAULT_MAX_LEN
    if job.adapter and not (Path(job.adapter) / "adapter_config.json").is_file():
        raise InvalidRequest(f"adapter: {job.adapter} is not an adapter directory")
    for name, paths in (("loss_datasets", job.loss_datasets), ("fim_datasets", job.fim_datasets)):
        for i, path in enumerate(paths):
            if not Path(path).is_file():
                raise InvalidRequest(f"{name}[{i}]: {path} does not exist")
    if job.output_path and Path(job.output_path).is_dir():
        raise InvalidRequest(f"output_path: {job.output_path} is a directory; give a file path")
    if job.metrics_path and Path(job.metrics_path).is_dir():
        raise InvalidRequest(f"metrics_path: {job.metrics_path} is a directory; give the stage's metrics.json")
    if job.output_dir and Path(job.output_dir).exists() and not Path(job.output_dir).is_dir():
        raise InvalidRequest(f"output_dir: {job.output_dir} is a file; give a directory")
    max_len = job.max_seq_length or min(DEFAULT_MAX_LEN, context or DEFAULT_MAX_LEN)
    if context and max_len > context:
        raise InvalidRequest(f"max_seq_length must be <= {context}, got {max_len}")
    if job.max_tokens is not None and job.max_tokens < -1:
        raise InvalidRequest(f"max_loss_tokens must be -1 (all), 0 (default) or positive, got {job.max_tokens}")
    max_tokens = None if job.max_tokens in (None, -1) else job.max_tokens or DEFAULT_EVAL_TOKENS
    for name, value in (("samples_per_problem", job.samples), ("max_problems", job.max_problems),
                        ("max_workers", job.max_workers), ("max_fim_examples", job.max_fim_examples)):  # fmt: skip
        if value < 0:
            raise InvalidRequest(f"{name} must be >= 0 (0 = the default), got {value}")
    if not math.isfinite(job.timeout_s) or job.timeout_s < 0:
        raise InvalidRequest(f"timeout_s must be >= 0 (0 = {Limits().timeout_s:g} s), got {job.timeout_s}")
    samples = job.samples or 1
    if samples > 1 and job.sampling.temperature == 0 and not job.completions_path:
        raise InvalidRequest(
            f"samples_per_problem is {samples} but temperature is 0 (greedy: every sample would be the same); "
            "give a temperature (MultiPL-E uses 0.8 for pass@10)"
        )
    return replace(
        job,
        loss_datasets=list(job.loss_datasets),
        fim_datasets=list(job.fim_datasets),
        max_seq_length=max_len,
        batch_size=job.batch_size or DEFAULT_BATCH,
        max_tokens=max_tokens,
        benchmark=benchmark,
        samples=samples,
        timeout_s=job.timeout_s or Limits().timeout_s,
        max_workers=job.max_workers or os.cpu_count() or 1,
        max_fim_examples=job.max_fim_examples or fim_eval.DEFAULT_FIM_EXAMPLES,
        context_length=context,
    )


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


class _Run:
    """One evaluation's state: the emitter, the clock and the lazily loaded model."""

    def __init__(self, job: EvalJob, emit: Emit, cancel: threading.Event) -> None:
        self.job, self.emit, self.cancel = job, emit, cancel
        self.started = time.monotonic()
        self._model: tuple[Any, Any] | None = None

    def ms(self) -> int:
        return int((time.monotonic() - self.started) * 1000)

    def progress(self, phase: str, message: str, step: int, total: int, metrics: dict | None = None) -> None:
        self.emit(Event(PROGRESS, phase, message, step=step, total_steps=total, elapsed_ms=self.ms(),
                        metrics=metrics or {}))  # fmt: skip

    def check_cancel(self) -> None:
        if self.cancel.is_set():
            raise Cancelled("cancelled")

    def model(self) -> tuple[Any, Any]:
        if self._model is None:
            job = self.job
            where = model_mod.placement()
            self.emit(Event(LOG, "load", f"loading {job.model}" + (f" + {job.adapter}" if job.adapter else "")))
            tokenizer = model_mod.load_tokenizer(job.model)
            self._model = (model_mod.load_for_eval(job.model, job.adapter, where), tokenizer)
        return self._model


def _loss(run: _Run, metrics: dict[str, float]) -> dict[str, dict]:
    job = run.job
    model, tokenizer = run.model()
    encoder = RowEncoder(tokenizer, job.max_seq_length)
    names = dataset_names(job.loss_datasets)
    report: dict[str, dict] = {}
    total_loss, total_tokens = 0.0, 0
    for i, (name, path) in enumerate(zip(names, job.loss_datasets, strict=True)):
        run.check_cancel()
        run.progress("eval", f"{name}: tokenizing", i, len(names))
        cols, stats = encode_files([Path(path)], encoder, max_tokens=job.max_tokens)
        result = eval_loss(model, cols, job.batch_size, tokenizer.pad_token_id, run.cancel)
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
        run.progress("eval", f"{name}: loss {result.loss:.4f} over {result.tokens} tokens", i + 1, len(names),
                     {k: v for k, v in metrics.items() if k.startswith(name + ".")})  # fmt: skip
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
    return report


def _fim(run: _Run, metrics: dict[str, float]) -> dict[str, dict]:
    job = run.job
    model, tokenizer = run.model()
    style = detect_fim(tokenizer)
    if style is None:
        raise InvalidRequest(f"fim_datasets: model {job.model} has no fill-in-the-middle tokens")
    names = dataset_names(job.fim_datasets)
    report = {}
    for i, (name, path) in enumerate(zip(names, job.fim_datasets, strict=True)):
        run.progress("fim", f"{name}: completing middles", i, len(names))
        got = fim_eval.score(model, tokenizer, style, path, job.max_fim_examples, job.context_length, run.cancel)
        metrics[f"{name}.fim_exact_match"] = got.exact_match
        metrics[f"{name}.fim_edit_similarity"] = got.edit_similarity
        report[name] = {"path": path, "exact_match": got.exact_match, "edit_similarity": got.edit_similarity,
                        "examples": got.examples}  # fmt: skip
    if len(names) == 1:
        metrics["fim_exact_match"] = report[names[0]]["exact_match"]
        metrics["fim_edit_similarity"] = report[names[0]]["edit_similarity"]
    return report


def _generate(run: _Run, problem_set: problems.ProblemSet) -> dict[str, list[str]]:
    job = run.job
    model, tokenizer = run.model()
    out: dict[str, list[str]] = {}
    total = len(problem_set.problems)
    for i, problem in enumerate(problem_set.problems):
        run.check_cancel()
        out[problem.name] = complete(
            model, tokenizer, TextPrompt(problem.prompt), job.samples, job.sampling, job.context_length,
            problem.stop_tokens,
        )  # fmt: skip
        run.progress("generate", f"{problem.name}: {job.samples} sample(s)", i + 1, total)
    return out


def _execution(run: _Run, metrics: dict[str, float]) -> dict:
    job = run.job
    try:
        problem_set = problems.load(job.benchmark, limit=job.max_problems)
        if job.completions_path:
            completions = problems.load_completions(job.completions_path, problem_set.problems)
        else:
            completions = None
    except problems.ProblemError as exc:
        raise InvalidRequest(str(exc)) from None
    run.emit(Event(LOG, "execute", f"{len(problem_set.problems)} problem(s) from {problem_set.path}; "
                   f"{len(problem_set.excluded)} left out as unsolvable"))  # fmt: skip
    # Before any generation: a sandbox that cannot run elixir fails the job now.
    sandbox = Sandbox(replace(Limits(), timeout_s=job.timeout_s), slots=job.max_workers)
    if completions is None:
        completions = _generate(run, problem_set)
    total = sum(len(c) for c in completions.values())
    done = {"n": 0, "passed": 0}

    def on_sample(sample: execute.Sample) -> None:
        done["n"] += 1
        done["passed"] += sample.status == execute.PASSED
        run.progress("execute", f"{sample.problem}#{sample.sample}: {sample.status}", done["n"], total,
                     {"passed": float(done["passed"])})  # fmt: skip

    samples = scoring.run_samples(sandbox, completions, problem_set.problems, job.max_workers, on_sample, run.cancel)
    run.check_cancel()
    summary = scoring.summarize(problem_set, samples, sandbox)
    for key in ("pass_at_1", "pass_at_10", "compile_rate"):
        if summary.get(key) is not None:
            metrics[key] = float(summary[key])
    metrics["problems"] = float(summary["problems"])
    metrics["samples"] = float(summary["samples"])
    metrics["excluded"] = float(summary["excluded"])
    if job.output_dir:
        scoring.write_results(Path(job.output_dir) / "results.jsonl", samples)
    return summary


def run_evaluation(job: EvalJob, emit: Emit, cancel: threading.Event) -> str:
    run = _Run(job, emit, cancel)
    try:
        metrics: dict[str, float] = {}
        summary: dict[str, Any] = {"model": job.model or None, "adapter": job.adapter or None}
        if job.loss_datasets:
            summary["loss_datasets"] = _loss(run, metrics)
        if job.fim_datasets:
            summary["fim"] = _fim(run, metrics)
        if job.benchmark:
            summary.update(_execution(run, metrics))
            summary["completions"] = job.completions_path or None
            summary["sampling"] = {"samples": job.samples, "temperature": job.sampling.temperature,
                                   "top_p": job.sampling.top_p, "max_tokens": job.sampling.max_tokens}  # fmt: skip
        for key in ("loss", "perplexity", "fim_exact_match", "fim_edit_similarity"):
            if key in metrics:
                summary[key] = metrics[key]
        artifact = job.output_path
        if job.output_dir:
            artifact = str(Path(job.output_dir) / "summary.json")
            checkpoints.write_json_atomic(Path(artifact), summary)
        finite_metrics = {k: v for k, v in metrics.items() if math.isfinite(v)}
        if job.metrics_path:
            _add_to_metrics_json(Path(job.metrics_path), finite_metrics, artifact)
        emit(Event(COMPLETED, "eval", _headline(metrics), elapsed_ms=run.ms(), metrics=finite_metrics,
                   artifact_path=artifact))  # fmt: skip
        return COMPLETED
    except Cancelled as exc:
        emit(Event(CANCELLED, "eval", str(exc), elapsed_ms=run.ms()))
        return CANCELLED
    except (DatasetError, InvalidRequest) as exc:
        emit(Event(FAILED, "eval", str(exc), elapsed_ms=run.ms()))
        return FAILED
    except Exception as exc:  # noqa: BLE001 - a job ends with an event, never a stuck stream
        from python_worker.training.recipe import is_oom

        prefix = "out of memory: lower batch size or sequence length" if is_oom(exc) else type(exc).__name__
        emit(Event(FAILED, "eval", f"{prefix}: {exc}", elapsed_ms=run.ms()))
        return FAILED


def _add_to_metrics_json(path: Path, metrics: dict[str, float], summary_path: str) -> None:
    """Add this evaluation's numbers to a stage's metrics.json, under "evaluation"."""
    try:
        current = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"metrics_path: {path} is not JSON ({exc.msg})") from None
    if not isinstance(current, dict):
        raise InvalidRequest(f"metrics_path: {path} does not hold a JSON object")
    current["evaluation"] = {**metrics, "summary": summary_path or None}
    checkpoints.write_json_atomic(path, current)


def _headline(metrics: dict[str, float]) -> str:
    parts = []
    if "pass_at_1" in metrics:
        parts.append(f"pass@1 {metrics['pass_at_1']:.3f}")
    if "pass_at_10" in metrics:
        parts.append(f"pass@10 {metrics['pass_at_10']:.3f}")
    if "compile_rate" in metrics:
        parts.append(f"compile rate {metrics['compile_rate']:.3f}")
    if "fim_exact_match" in metrics:
        parts.append(f"FIM exact match {metrics['fim_exact_match']:.3f}")
    if "loss" in metrics:
        parts.append(f"eval loss {metrics['loss']:.4f}")
    return ", ".join(parts) or "evaluated"
