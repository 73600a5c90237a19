"""trl's SFTTrainer, configured for a stage, plus the callbacks that report and steer it.

What trl/transformers do for us: gradient accumulation, cosine schedule with
warmup, grad-norm clipping, gradient checkpointing, packing (best-fit
decreasing: position_ids restart at every row, and transformers turns that into
a block-diagonal causal mask, so packed rows never attend to each other),
checkpoints (adapter, optimizer, scheduler, RNG, trainer state = data position)
and resuming from them, TensorBoard.

What we add, each where trl documents it should go:
  * `GuardedSFTTrainer.compute_loss`: the forgetting-guard penalty. trl says to
    subclass and override compute_loss (its compute_loss_func is deprecated and
    costs an extra forward pass).
  * `GuardedSFTTrainer._plain_loss`: where a micro-batch's whole logits are small
    (PLAIN_LOSS_MAX_LOGITS_BYTES), the model's own loss over them instead of
    trl's tiled LM head; and our own count of the tokens trained.
  * `collator.PackedRowsCollator`: packed rows batched row by row, except under
    flash attention (trl's padding-free single row costs sdpa a dense mask).
    trl refuses a custom collator with bfd packing, so `build` swaps it in.
  * `GuardedSFTTrainer.create_optimizer`: a second parameter group for
    embed_tokens/lm_head with their own learning rate (Trainer's own groups
    split only by weight decay).
  * `JobCallback`: progress events, eval events, checkpoint events (every
    save_steps and, by the clock, every save_minutes), early stopping with a
    stated reason, and cancel (save a checkpoint, then stop).
Completion-only loss is decided in data.py: rows arrive with their labels.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer, TrainerCallback
from trl import SFTConfig, SFTTrainer

from python_worker.job_events import (
    CHECKPOINT,
    LOG,
    METRICS,
    PROGRESS,
    Emit,
    Event,
    finite,
)
from python_worker.training import checkpoints
from python_worker.training.collator import IGNORE, NUM_TOKENS, PackedRowsCollator, needs_row_batches
from python_worker.training.config import TrainSettings
from python_worker.training.guard import ForgettingGuard
from python_worker.training.model import Placement, embedding_parameters

# TensorBoard files trail training by at most this many seconds.
TB_FLUSH_S = 10


# Logits up to this size (batch x length x vocab, fp32) are computed whole: cheaper
# than trl's chunked LM head, which exists to avoid logits of large vocabularies.
PLAIN_LOSS_MAX_LOGITS_BYTES = 256 * 2**20


def plain_loss_fits(s: TrainSettings, vocab_size: int) -> bool:
    """Whether a micro-batch's whole logits fit PLAIN_LOSS_MAX_LOGITS_BYTES."""
    return s.batch_size * s.max_seq_length * vocab_size * 4 <= PLAIN_LOSS_MAX_LOGITS_BYTES


class GuardedSFTTrainer(SFTTrainer):
    """SFTTrainer with the forgetting guard in the loss, an embeddings LR group, and
    the plain loss (whole logits) where they are small."""

    guard: ForgettingGuard | None = None
    embeddings_lr: float | None = None
    # trl's fused LM head computes log-probs, entropy and top-1 in vocabulary tiles.
    # That saves the memory of big vocabularies' logits (151k tokens for Qwen) but
    # costs compute: on the tiny model (8k tokens) it was 1.5 s of a 2.1 s CPU step.
    plain_loss: bool = False
    tokens_trained: int = 0

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        tokens = inputs.pop(NUM_TOKENS, None)
        if self.plain_loss:
            result = self._plain_loss(model, inputs, return_outputs, num_items_in_batch)
        else:
            result = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        if model.training:
            self._count_tokens(inputs, tokens)
        if self.guard is None or not model.training:
            return result
        loss, outputs = result if return_outputs else (result, None)
        penalty = self.guard.penalty()
        # Like trl's MoE aux loss: with num_items_in_batch the trainer does not divide
        # by the accumulation steps, so each micro-batch adds its share.
        steps = self.current_gradient_accumulation_steps if num_items_in_batch is not None else 1
        loss = loss + penalty.to(loss.dtype) / steps
        self._metrics["train"]["reg_loss"].append(float(penalty.detach()))
        return (loss, outputs) if return_outputs else loss

    def _plain_loss(self, model, inputs, return_outputs, num_items_in_batch):
        """The model's own loss over whole logits, with trl's token-accuracy metric."""
        loss, outputs = Trainer.compute_loss(
            self, model, {**inputs, "use_cache": False}, return_outputs=True, num_items_in_batch=num_items_in_batch
        )
        with torch.no_grad():
            labels = inputs["labels"][:, 1:]
            scored = labels != IGNORE
            hits = (outputs.logits[:, :-1].argmax(-1) == labels) & scored
            accuracy = float(hits.sum() / scored.sum().clamp(min=1))
        self._metrics["train" if model.training else "eval"]["mean_token_accuracy"].append(accuracy)
        return (loss, outputs) if return_outputs else loss

    def _count_tokens(self, inputs: dict[str, Any], tokens: Any) -> None:
        """Tokens trained on, for the progress events' throughput. Without an
        attention mask trl counts position_ids.size(1): its own padding-free batch
        is one row, but a row-batched packed batch would count one row's length."""
        if tokens is None:
            mask = inputs.get("attention_mask")
            tokens = mask.sum() if mask is not None else inputs["input_ids"].numel()
        self.tokens_trained += int(tokens)
        self._metrics["train"]["num_tokens"] = [self.tokens_trained]

    def create_optimizer(self, model=None):
        emb = embedding_parameters(self.model) if self.embeddings_lr else []
        if self.optimizer is not None or not emb:
            return super().create_optimizer(model)
        emb_ids = {id(p) for p in emb}
        rest = [p for p in self.model.parameters() if p.requires_grad and id(p) not in emb_ids]
        cls, kwargs = self.get_optimizer_cls_and_kwargs(self.args, self.model)
        groups = [
            {"params": rest, "weight_decay": self.args.weight_decay},
            # No weight decay on embeddings: it would shrink rarely seen token rows.
            {"params": emb, "weight_decay": 0.0, "lr": self.embeddings_lr},
        ]
        self.optimizer = cls(groups, **kwargs)
        return self.optimizer


class JobCallback(TrainerCallback):
    """Turns trainer hooks into job events; handles cancel and early stopping."""

    def __init__(
        self,
        emit: Emit,
        cancel: threading.Event,
        phase: str,
        patience: int,
        threshold: float,
        save_minutes: float = 10.0,
    ) -> None:
        self.emit = emit
        self.cancel = cancel
        self.phase = phase
        self.patience = patience
        self.threshold = threshold
        self.cancelled = False
        self.early_stop_reason = ""
        self.best: float | None = None
        self.best_step = 0
        self.bad_evals = 0
        self._t0 = time.monotonic()
        self._first_step = 0
        self._last_time = self._t0
        self._last_tokens = 0.0
        # Checkpoints by the clock as well as by save_steps: on slow hardware 100
        # steps can be hours, and a crash would lose all of them.
        self.save_every_s = save_minutes * 60.0
        self._last_save = self._t0
        self._timed_save = False

    # Timing and ETA count only this attempt's steps: a resumed run has not paid
    # for the steps before its checkpoint.
    def _timing(self, state) -> tuple[int, int]:
        elapsed = time.monotonic() - self._t0
        done = state.global_step - self._first_step
        left = max(0, state.max_steps - state.global_step)
        eta = elapsed / done * left if done > 0 else 0.0
        return int(elapsed * 1000), int(eta * 1000)

    def on_train_begin(self, args, state, control, **kwargs):
        self._t0 = self._last_time = self._last_save = time.monotonic()
        self._first_step = state.global_step
        # A resumed run rebuilds its early-stopping state from the eval history.
        for entry in state.log_history:
            if "eval_loss" in entry:
                self._observe(entry["eval_loss"], entry.get("step", 0))
        where = f"resumed at step {state.global_step}" if state.global_step else "started"
        self.emit(
            Event(
                LOG,
                self.phase,
                f"training {where}; {state.max_steps} steps in all",
                step=state.global_step,
                total_steps=state.max_steps,
            )
        )

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= state.max_steps and state.eval_steps and state.global_step % state.eval_steps:
            # transformers evaluates once more at a last step off the eval_steps
            # grid; the recipe measures the eval loss right after training anyway
            # (the figure the gate reads), so that pass would only repeat it.
            control.should_evaluate = False
        if self.cancel.is_set() and not self.cancelled:
            self.cancelled = True
            control.should_save = True
            control.should_training_stop = True
        elif not control.should_save and time.monotonic() - self._last_save >= self.save_every_s:
            control.should_save = True
            self._timed_save = True
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "loss" not in logs or "eval_loss" in logs:
            return
        now = time.monotonic()
        tokens = float(logs.get("num_tokens", 0.0))
        # trl's token count restarts with each attempt; the delta is what matters.
        delta = tokens - self._last_tokens if tokens >= self._last_tokens else tokens
        rate = delta / (now - self._last_time) if now > self._last_time else 0.0
        self._last_time, self._last_tokens = now, tokens
        elapsed_ms, eta_ms = self._timing(state)
        metrics = {
            "loss": logs.get("loss"),
            "learning_rate": logs.get("learning_rate"),
            "grad_norm": logs.get("grad_norm"),
            "epoch": state.epoch,
            "tokens_per_s": rate,
            # Tokens this attempt has trained on (non-padding), for throughput over a span.
            "tokens_seen": tokens,
            "reg_loss": logs.get("reg_loss"),
            "mean_token_accuracy": logs.get("mean_token_accuracy"),
        }
        self.emit(
            Event(
                PROGRESS,
                self.phase,
                f"step {state.global_step}/{state.max_steps} loss {logs['loss']:.4f}",
                step=state.global_step,
                total_steps=state.max_steps,
                elapsed_ms=elapsed_ms,
                eta_ms=eta_ms,
                metrics=finite(metrics),
            )
        )

    def _observe(self, loss: float, step: int) -> None:
        if self.best is None or loss < self.best - self.threshold:
            self.best, self.best_step, self.bad_evals = loss, step, 0
        else:
            self.bad_evals += 1

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        loss = (metrics or {}).get("eval_loss")
        if loss is None:
            return control
        self._observe(loss, state.global_step)
        elapsed_ms, eta_ms = self._timing(state)
        self.emit(
            Event(
                METRICS,
                "eval",
                f"eval loss {loss:.4f} at step {state.global_step}",
                step=state.global_step,
                total_steps=state.max_steps,
                elapsed_ms=elapsed_ms,
                eta_ms=eta_ms,
                metrics=finite({"eval_loss": loss, "epoch": state.epoch}),
            )
        )
        if self.patience > 0 and self.bad_evals >= self.patience:
            self.early_stop_reason = (
                f"eval_loss did not improve by more than {self.threshold:g} for {self.patience} "
                f"evaluations (best {self.best:.4f} at step {self.best_step})"
            )
            control.should_training_stop = True
        return control

    def on_save(self, args, state, control, **kwargs):
        self._last_save = time.monotonic()
        why = f" ({self.save_every_s / 60:g} min since the last)" if self._timed_save else ""
        self._timed_save = False
        path = Path(args.output_dir) / f"{checkpoints.PREFIX}{state.global_step}"
        if path.is_dir():
            # The trainer's own state (trainer_state.json) is what resume reads; this
            # spells the data position out for people and the host.
            per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps
            checkpoints.write_json_atomic(
                path / "data_position.json",
                {
                    "global_step": state.global_step,
                    "epoch": state.epoch,
                    "sequences_seen": state.global_step * per_step,
                    "data_seed": args.data_seed,
                    "sampling": args.train_sampling_strategy,
                },
            )
        elapsed_ms, eta_ms = self._timing(state)
        self.emit(
            Event(
                CHECKPOINT,
                self.phase,
                f"checkpoint saved at step {state.global_step}{why}",
                step=state.global_step,
                total_steps=state.max_steps,
                elapsed_ms=elapsed_ms,
                eta_ms=eta_ms,
                artifact_path=str(path),
            )
        )


def sft_config(s: TrainSettings, out: Path, where: Placement, has_eval: bool) -> SFTConfig:
    return SFTConfig(
        output_dir=str(checkpoints.root(out)),
        num_train_epochs=s.epochs,
        max_steps=s.max_steps if s.max_steps > 0 else -1,
        learning_rate=s.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=s.warmup_ratio,  # a float in [0, 1) is a ratio of the total steps
        weight_decay=s.weight_decay,
        per_device_train_batch_size=s.batch_size,
        per_device_eval_batch_size=s.batch_size,
        gradient_accumulation_steps=s.gradient_accumulation_steps,
        max_grad_norm=s.max_grad_norm,
        gradient_checkpointing=s.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False} if s.gradient_checkpointing else None,
        max_length=s.max_seq_length,
        packing=s.packing,
        packing_strategy="bfd",
        eval_packing=False,
        # Rows come tokenized with their labels; trl keeps labels as given.
        dataset_kwargs=None,
        completion_only_loss=None,
        bf16=where.dtype == torch.bfloat16,
        fp16=where.dtype == torch.float16,
        use_cpu=where.device == "cpu",
        seed=s.seed,
        data_seed=s.seed,
        train_sampling_strategy="sequential" if s.curriculum_order else "random",
        logging_strategy="steps",
        logging_steps=s.logging_steps,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=s.eval_steps,
        save_strategy="steps",
        save_steps=s.save_steps,
        save_total_limit=s.save_total_limit,
        report_to="none",  # TensorBoard goes through our own callback, to output_dir/tensorboard
        disable_tqdm=True,
        log_level="warning",
        dataloader_num_workers=0,
        remove_unused_columns=True,
    )


def build(
    model: Any,
    tokenizer: Any,
    train_ds: Any,
    eval_ds: Any,
    s: TrainSettings,
    out: Path,
    where: Placement,
    callbacks: list[TrainerCallback],
) -> GuardedSFTTrainer:
    """The trainer; set `.guard` afterwards (the guard anchors the weights it will train)."""
    from torch.utils.tensorboard import SummaryWriter
    from transformers.integrations import TensorBoardCallback
    from transformers.trainer_callback import PrinterCallback

    class ThrottledFlushWriter(SummaryWriter):
        """transformers flushes TensorBoard after every log (a file write per step);
        flush at most every few seconds instead. close() still writes everything."""

        _last_flush = 0.0

        def flush(self) -> None:
            now = time.monotonic()
            if now - self._last_flush >= TB_FLUSH_S:
                self._last_flush = now
                super().flush()

    tb = TensorBoardCallback(ThrottledFlushWriter(log_dir=str(out / "tensorboard"), flush_secs=TB_FLUSH_S))
    # trl casts QLoRA adapter weights to bf16 (the paper's recipe for bf16 GPUs).
    # With fp32 compute (CPU) that only costs precision and speed, and would perturb
    # a continued adapter; with fp16 compute, fp32 master weights are what AMP
    # expects. There, keep the exact values and put them back.
    keep = where.dtype != torch.bfloat16
    originals = [(p, p.data) for p in model.parameters() if p.requires_grad] if keep else []
    trainer = GuardedSFTTrainer(
        model=model,
        args=sft_config(s, out, where, eval_ds is not None),
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        callbacks=[*callbacks, tb],
    )
    for param, data in originals:
        param.data = data
    if s.packing and needs_row_batches(model):
        # trl refuses a custom collator with bfd packing, so it is swapped in after construction.
        trainer.data_collator = PackedRowsCollator(pad_token_id=trainer.processing_class.pad_token_id)
    # With tqdm off the trainer prints every log dict to stdout; our events say it all.
    trainer.remove_callback(PrinterCallback)
    trainer.embeddings_lr = s.lora.embeddings_learning_rate if s.lora.train_embeddings else None
    trainer.plain_loss = plain_loss_fits(s, model.config.get_text_config().vocab_size)
    return trainer
