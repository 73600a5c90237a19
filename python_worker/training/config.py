"""Typed training configuration: defaults, help text and validation.

`TrainSettings` mirrors the proto's `TrainConfig` (and `LoraSettings` its
`LoraConfig`) field for field, plus a few knobs the proto does not carry, which
a JSON config file (`--config`) can set. Every field has its help text in the
field metadata, so `describe()` can print them (`--help-config`).

These are the worker's field defaults ("unset" over the wire), not the
curriculum's stage settings: those live in one file, the host's
elixir/config/curriculum.exs, and reach the worker in each TrainRequest.

Proto3 cannot tell "unset" from zero, so the contract says zero means "use the
default". `merge()` follows that rule: only non-zero values override a default.
A consequence: defaults of the proto's bool fields must be False, or the field
could never be switched off over the wire.

Validation happens here, before anything heavy is imported or loaded; every
error names the field ("config.learning_rate must be > 0, got -1"). Reading,
type checks and help text are python_worker.typed_config, shared with the
dataset builder's config; this module holds the fields and their rules.
"""

# `setting` wraps dataclasses.field with help text; ruff cannot see that it returns a field.
# ruff: noqa: RUF009

from __future__ import annotations

from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any

from python_worker import typed_config
from python_worker.training.data import DEFAULT_EVAL_TOKENS
from python_worker.training.errors import InvalidRequest
from python_worker.typed_config import section, setting

# The seed projects' LoRA targets: every attention and MLP projection.
DEFAULT_TARGETS = (
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
)
QUANTIZATIONS = ("nf4", "none")
REGULARIZERS = ("none", "l2", "ewc")
# What an unset regularizer_weight becomes when a regularizer is chosen.
DEFAULT_REGULARIZER_WEIGHT = 0.1


@dataclass
class LoraSettings:
    r: int = setting(32, "LoRA rank (the seed projects use 32).")
    alpha: float = setting(64.0, "LoRA scaling numerator; the update is scaled by alpha / r.")
    dropout: float = setting(0.05, "Dropout on the LoRA input, in [0, 1).")
    target_modules: list[str] = setting(
        list(DEFAULT_TARGETS), "Module names that get LoRA adapters (attention and MLP projections)."
    )
    train_embeddings: bool = setting(
        False,
        "Stage 1 only: also train embed_tokens / lm_head (full weights, their own learning rate). "
        "The serving artifact is then a merged model, since vLLM cannot serve LoRA on those "
        "layers for Qwen2-family models.",
    )
    embeddings_learning_rate: float = setting(
        0.0, "Learning rate of embed_tokens / lm_head; 0 means learning_rate / 10."
    )


@dataclass
class TrainSettings:
    epochs: int = setting(1, "Passes over the training split (ignored when max_steps > 0).")
    max_steps: int = setting(0, "Optimizer steps to run; 0 means run `epochs` epochs.")
    learning_rate: float = setting(2e-4, "Peak learning rate of the LoRA weights (QLoRA default).")
    batch_size: int = setting(4, "Sequences per micro-batch.")
    gradient_accumulation_steps: int = setting(4, "Micro-batches per optimizer step.")
    max_seq_length: int = setting(
        2048,
        "Tokens per sequence; longer text rows are split, longer chat/FIM rows cut.",
    )
    warmup_ratio: float = setting(0.03, "Share of the steps with a linear warmup, in [0, 1).")
    max_grad_norm: float = setting(0.3, "Gradient clipping norm (0.3 as in the QLoRA paper).")
    save_steps: int = setting(100, "Save a resumable checkpoint every N optimizer steps.")
    save_minutes: float = setting(
        10.0,
        "Also save a resumable checkpoint once this many minutes have passed since the last "
        "one (fractions allowed), so a crash loses at most a few minutes on slow hardware.",
    )
    eval_steps: int = setting(100, "Compute eval loss every N optimizer steps (needs an eval split).")
    early_stopping_patience: int = setting(
        3,
        "Stop after this many evaluations without improvement; -1 disables early stopping.",
    )
    early_stopping_threshold: float = setting(
        0.0,
        "An eval loss counts as better only if it beats the best by more than this.",
    )
    quantization: str = setting("nf4", "'nf4' (QLoRA: 4-bit NF4, double quantisation) or 'none'.")
    gradient_checkpointing: bool = setting(
        False,
        "Recompute activations in the backward pass: less memory, ~30% more compute.",
    )
    packing: bool = setting(
        False,
        "Pack several rows into each sequence (best-fit decreasing); attention stays within "
        "each row (position_ids mark the boundaries).",
    )
    regularizer: str = setting(
        "none",
        "Forgetting guard: 'l2' pulls the trained weights toward their starting values (the "
        "previous stage's), 'ewc' weights that pull by a Fisher estimate on general code.",
    )
    regularizer_weight: float = setting(
        0.0,
        f"Strength of the regularizer; 0 means {DEFAULT_REGULARIZER_WEIGHT} when one is set.",
    )
    seed: int = setting(42, "Seed of the data order, LoRA init and dropout; 0 means the default 42.")
    lora: LoraSettings = section(LoraSettings, "LoRA adapter settings.")
    # Not in the proto: JSON config / CLI only.
    logging_steps: int = setting(1, "Emit a progress event every N optimizer steps.")
    max_eval_rows: int = setting(
        1000,
        "Rows of each eval set used for eval loss (during training and before/after).",
    )
    max_eval_tokens: int = setting(
        DEFAULT_EVAL_TOKENS,
        "Tokens of each eval set used for eval loss (the rows that reach it, whole): "
        "periodic evals on a large eval split would otherwise cost more than training.",
    )
    save_total_limit: int = setting(2, "Checkpoints kept under output_dir/checkpoints.")
    weight_decay: float = setting(0.0, "AdamW weight decay of the LoRA weights.")
    curriculum_order: bool | None = setting(
        None,
        "Train in file order instead of shuffled; None means on for stage 3 (book chapters "
        "keep their pedagogical order) and off otherwise.",
    )
    ewc_fisher_rows: int = setting(64, "Rows used to estimate the Fisher information for 'ewc'.")


def describe() -> list[tuple[str, Any, str]]:
    """(name, default, help) of every setting, nested ones dotted: for --help and docs."""
    rows = typed_config.describe(TrainSettings, "config.")
    return [row for row in rows if not is_dataclass(row[1])]


def from_dict(data: Any, origin: str = "") -> TrainSettings:
    """Settings from a JSON-like dict; an unknown key or a wrong type is an error naming the field."""
    return typed_config.read(
        TrainSettings, data, kind="training", error=InvalidRequest, origin=origin, prefix="config."
    )


def load_file(path: str | Path) -> TrainSettings:
    """Settings from a JSON (or .toml) file: keys as in TrainSettings, `lora` nested."""
    return from_dict(typed_config.load(path, InvalidRequest), origin=Path(path).name)


def merge(base: TrainSettings, overrides: dict[str, Any]) -> TrainSettings:
    """`base` with the non-zero values of `overrides` (proto3: zero means default)."""
    data = asdict(base)
    lora = data.pop("lora")
    for key, value in overrides.items():
        if key == "lora":
            for lkey, lvalue in value.items():
                if _is_set(lvalue):
                    lora[lkey] = list(lvalue) if isinstance(lvalue, list | tuple) else lvalue
        elif _is_set(value):
            data[key] = value
    return TrainSettings(**data, lora=LoraSettings(**lora))


def _is_set(value: Any) -> bool:
    if isinstance(value, list | tuple | str):
        return len(value) > 0
    return bool(value)


def resolved(s: TrainSettings, stage: int) -> TrainSettings:
    """A copy with the "0 means ..." fields turned into their effective values."""
    data = asdict(s)
    lora = data.pop("lora")
    out = TrainSettings(**data, lora=LoraSettings(**lora))
    out.quantization = (out.quantization or "nf4").lower()
    out.regularizer = (out.regularizer or "none").lower()
    if out.regularizer != "none" and out.regularizer_weight == 0:
        out.regularizer_weight = DEFAULT_REGULARIZER_WEIGHT
    if out.lora.embeddings_learning_rate == 0:
        out.lora.embeddings_learning_rate = out.learning_rate / 10
    if out.seed == 0:
        out.seed = 42
    if out.curriculum_order is None:
        out.curriculum_order = stage == 3
    return out


def validate(s: TrainSettings, stage: int, model_context: int | None = None) -> None:
    """Raise InvalidRequest naming the first bad field; `s` is already resolved."""

    def bad(name: str, rule: str, value: Any) -> Exception:
        return typed_config.fail(InvalidRequest, "", f"config.{name}", rule, value)

    # Types first (integers, finite numbers, ...): the rules below compare numbers.
    typed_config.check(s, error=InvalidRequest, prefix="config.")

    if s.learning_rate <= 0:
        raise bad("learning_rate", "> 0", s.learning_rate)
    if s.epochs < 0:
        raise bad("epochs", ">= 0", s.epochs)
    if s.max_steps < 0:
        raise bad("max_steps", ">= 0 (0 means run `epochs` epochs)", s.max_steps)
    if s.max_steps == 0 and s.epochs == 0:
        raise bad("epochs", "> 0 when max_steps is 0", s.epochs)
    for name in (
        "batch_size",
        "gradient_accumulation_steps",
        "logging_steps",
        "save_total_limit",
    ):
        if getattr(s, name) < 1:
            raise bad(name, ">= 1", getattr(s, name))
    if s.max_seq_length < 8:
        raise bad("max_seq_length", ">= 8", s.max_seq_length)
    if model_context and s.max_seq_length > model_context:
        raise bad(
            "max_seq_length",
            f"<= the model's context length ({model_context})",
            s.max_seq_length,
        )
    if not 0 <= s.warmup_ratio < 1:
        raise bad("warmup_ratio", "in [0, 1)", s.warmup_ratio)
    if s.max_grad_norm < 0:
        raise bad("max_grad_norm", ">= 0", s.max_grad_norm)
    if s.save_steps < 1:
        raise bad("save_steps", ">= 1", s.save_steps)
    if s.save_minutes <= 0:
        raise bad("save_minutes", "> 0", s.save_minutes)
    if s.eval_steps < 1:
        raise bad("eval_steps", ">= 1", s.eval_steps)
    if s.early_stopping_patience < -1 or s.early_stopping_patience == 0:
        raise bad(
            "early_stopping_patience",
            ">= 1, or -1 to disable",
            s.early_stopping_patience,
        )
    if s.early_stopping_threshold < 0:
        raise bad("early_stopping_threshold", ">= 0", s.early_stopping_threshold)
    if s.quantization not in QUANTIZATIONS:
        raise bad("quantization", f"one of {list(QUANTIZATIONS)}", s.quantization)
    if s.regularizer not in REGULARIZERS:
        raise bad("regularizer", f"one of {list(REGULARIZERS)}", s.regularizer)
    if s.regularizer_weight < 0:
        raise bad("regularizer_weight", ">= 0", s.regularizer_weight)
    if s.weight_decay < 0:
        raise bad("weight_decay", ">= 0", s.weight_decay)
    if s.max_eval_rows < 1:
        raise bad("max_eval_rows", ">= 1", s.max_eval_rows)
    if s.max_eval_tokens < 1:
        raise bad("max_eval_tokens", ">= 1", s.max_eval_tokens)
    if s.ewc_fisher_rows < 1:
        raise bad("ewc_fisher_rows", ">= 1", s.ewc_fisher_rows)
    if s.seed < 0:
        raise bad("seed", ">= 0", s.seed)

    lora = s.lora
    if lora.r < 1:
        raise bad("lora.r", ">= 1", lora.r)
    if lora.alpha <= 0:
        raise bad("lora.alpha", "> 0", lora.alpha)
    if not 0 <= lora.dropout < 1:
        raise bad("lora.dropout", "in [0, 1)", lora.dropout)
    if not lora.target_modules or not all(isinstance(m, str) and m.strip() for m in lora.target_modules):
        raise bad(
            "lora.target_modules",
            "a non-empty list of module names",
            lora.target_modules,
        )
    if lora.embeddings_learning_rate <= 0:
        raise bad("lora.embeddings_learning_rate", "> 0", lora.embeddings_learning_rate)
    if lora.train_embeddings and stage != 1:
        raise InvalidRequest(
            f"config.lora.train_embeddings is a stage-1 option (stage {stage} continues the stage-1 embeddings frozen)"
        )
