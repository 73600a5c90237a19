"""One training job (a stage of the curriculum) and its up-front validation.

`validate_job` checks everything that can be checked without loading a model:
the settings, the paths (base model, dataset split, init adapter, general eval
set) and the output directory's state. It reads a few small JSON files
(config.json, adapter_config.json, the first dataset row), nothing more.
"""

from __future__ import annotations

import json
import os
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from python_worker.jsonl import read_objects
from python_worker.training import checkpoints
from python_worker.training.config import TrainSettings, resolved, validate
from python_worker.training.data import is_replay
from python_worker.training.errors import InvalidRequest


@dataclass
class TrainJob:
    base_model: str
    dataset_dir: str
    stage: int
    output_dir: str
    settings: TrainSettings = field(default_factory=TrainSettings)
    job_id: str = ""
    resume: bool = False
    init_adapter: str = ""
    general_eval_path: str = ""
    # The stage's eval set; "" means the dataset's own split, stageN/eval.jsonl.
    eval_path: str = ""

    @property
    def out(self) -> Path:
        return Path(self.output_dir)

    def split_path(self, split: str) -> Path:
        return Path(self.dataset_dir) / f"stage{self.stage}" / f"{split}.jsonl"

    @property
    def eval_set(self) -> Path:
        return Path(self.eval_path) if self.eval_path else self.split_path("eval")


def model_config_path(model: str) -> Path | None:
    """config.json of a local model directory, or of a hub id already in the local cache."""
    path = Path(model).expanduser()
    if (path / "config.json").is_file():
        return path / "config.json"
    if path.exists() or model.startswith((".", "/", "~")) or model.count("/") != 1:
        return None
    try:  # A hub id: usable only if it is cached, since nothing can be downloaded here.
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(model, "config.json")
    except (OSError, ValueError):  # ValueError: not a valid repo id
        return None
    return Path(cached) if isinstance(cached, str) else None


def model_context_length(config_path: Path) -> int | None:
    try:
        cfg = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    text_cfg = cfg.get("text_config", cfg)
    value = text_cfg.get("max_position_embeddings")
    return int(value) if isinstance(value, int) else None


def _check_jsonl(path: Path, name: str) -> None:
    """The file exists and its first non-blank line is a JSON object."""

    def bad_line(lineno: int, exc: json.JSONDecodeError | None) -> InvalidRequest:
        problem = f"is not JSON ({exc})" if exc is not None else "is not a JSON object"
        return InvalidRequest(f"{name}: {path}:{lineno} {problem}")

    try:
        with closing(read_objects(path, bad_line)) as rows:
            if next(rows, None) is not None:
                return
    except UnicodeDecodeError:
        raise InvalidRequest(f"{name}: {path} is not UTF-8 text") from None
    raise InvalidRequest(f"{name}: {path} has no rows")


def _rows_where(path: Path, wanted: bool) -> bool:
    """Any row whose is_replay(row) is `wanted`; stops at the first (replay is mixed all through)."""
    with path.open("r", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not wanted and '"replay"' not in line and line.strip():
                return True  # cannot be a replay row, whatever else it holds
            if wanted and '"replay"' not in line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and is_replay(row) == wanted:
                return True
    return False


def _has_replay_rows(path: Path) -> bool:
    return _rows_where(path, True)


def check_eval_set(job: TrainJob) -> None:
    """The stage's eval set, when there is one, holds Elixir rows: the gate compares their loss."""
    path = job.eval_set
    if job.eval_path and not path.is_file():
        raise InvalidRequest(f"eval_path: {path} does not exist")
    if not path.is_file():
        return  # the dataset's own split is optional: no eval loss, no early stopping
    _check_jsonl(path, "eval_path")
    if not _rows_where(path, False):
        raise InvalidRequest(
            f"eval_path: {path} has no Elixir rows (every row is replay, source "
            f"'replay'), so the stage has no Elixir eval loss to gate on"
        )


def check_general_eval(job: TrainJob) -> None:
    """The general-code eval set, when given, is JSONL (a file or a directory of them)."""
    if not job.general_eval_path:
        return
    files = eval_files(job.general_eval_path)
    if not files or not all(f.is_file() for f in files):
        raise InvalidRequest(f"general_eval_path: {job.general_eval_path} is not a JSONL file or a directory of them")
    for f in files:
        _check_jsonl(f, "general_eval_path")


def eval_files(path: str) -> list[Path]:
    """A JSONL file, or every *.jsonl file under a directory (sorted)."""
    p = Path(path)
    if p.is_dir():
        return sorted(p.rglob("*.jsonl"))
    return [p]


def validate_job(job: TrainJob) -> TrainJob:
    """The job with resolved settings, or InvalidRequest naming the bad field."""
    if job.stage not in (1, 2, 3):
        raise InvalidRequest(f"stage must be 1, 2 or 3, got {job.stage}")
    if not job.base_model:
        raise InvalidRequest("base_model is required")
    cfg_path = model_config_path(job.base_model)
    if cfg_path is None:
        raise InvalidRequest(
            f"base_model: no model at {job.base_model!r} (a directory with config.json, or a "
            "hub id already in the local cache)"
        )
    if not job.dataset_dir:
        raise InvalidRequest("dataset_dir is required")
    if not Path(job.dataset_dir).is_dir():
        raise InvalidRequest(f"dataset_dir: {job.dataset_dir} is not a directory")
    train = job.split_path("train")
    if not train.is_file():
        raise InvalidRequest(f"dataset_dir: {train} does not exist (stage {job.stage} train split)")
    _check_jsonl(train, "dataset_dir")
    if not job.output_dir:
        raise InvalidRequest("output_dir is required")
    out = Path(job.output_dir)
    if out.exists() and not out.is_dir():
        raise InvalidRequest(f"output_dir: {out} exists and is not a directory")
    parent = out.parent if not out.exists() else out
    while not parent.exists():
        parent = parent.parent
    if not os.access(parent, os.W_OK):
        raise InvalidRequest(f"output_dir: {parent} is not writable")
    if not job.resume and checkpoints.latest(out) is not None:
        raise InvalidRequest(
            f"output_dir: {out} already holds checkpoints; set resume to continue it, or pick a new directory"
        )

    settings = resolved(job.settings, job.stage)
    validate(settings, job.stage, model_context_length(cfg_path))

    if job.init_adapter:
        adapter_cfg = Path(job.init_adapter) / "adapter_config.json"
        if not adapter_cfg.is_file():
            raise InvalidRequest(
                f"init_adapter: {job.init_adapter} is not an adapter directory (adapter_config.json missing)"
            )
        if settings.lora.train_embeddings:
            saved = json.loads(adapter_cfg.read_text(encoding="utf-8")).get("modules_to_save")
            if not saved:
                raise InvalidRequest(
                    "config.lora.train_embeddings: init_adapter has no trained embeddings to "
                    "continue; start stage 1 without init_adapter"
                )
    check_eval_set(job)
    check_general_eval(job)
    if settings.regularizer == "ewc" and not job.general_eval_path and not _has_replay_rows(train):
        raise InvalidRequest(
            "config.regularizer 'ewc' estimates its Fisher information on general code: set "
            f"general_eval_path, or include replay rows (source 'replay') in {train}"
        )
    if settings.quantization == "nf4":
        try:
            import bitsandbytes  # noqa: F401
        except (
            ImportError,
            OSError,
            RuntimeError,
        ) as exc:  # absent, or a broken native lib
            raise InvalidRequest(
                f"config.quantization 'nf4' needs bitsandbytes, which does not load here ({exc}); "
                "use 'none' for plain LoRA"
            ) from None

    return TrainJob(
        base_model=job.base_model,
        dataset_dir=job.dataset_dir,
        stage=job.stage,
        output_dir=job.output_dir,
        settings=settings,
        job_id=job.job_id,
        resume=job.resume,
        init_adapter=job.init_adapter,
        general_eval_path=job.general_eval_path,
        eval_path=job.eval_path,
    )
