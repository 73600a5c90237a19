"""Training runs on the CPU with the tiny model: a few steps each, real QLoRA (NF4).

Covers: eval loss falls, plain LoRA with packing, resume == uninterrupted, cancel
saves a checkpoint, trained embeddings give a merged artifact, the L2 and EWC
guards, continuing a previous stage's adapter, OOM ends the job, and the
Evaluate job.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import torch

from python_worker.proto import worker_pb2
from python_worker.tests.test_training_fixtures import (
    kinds,
    losses_by_step,
    run_job,
    write_dataset,
)
from python_worker.training import checkpoints
from python_worker.training.config import TrainSettings, from_dict
from python_worker.training.job import TrainJob, validate_job
from python_worker.training.recipe import run_training
from python_worker.training.rpc import evaluate_events, train_events
from python_worker.training.streaming import run_streaming

K = worker_pb2.JobEvent


@pytest.fixture(scope="module")
def env(tmp_path_factory, tiny_model):
    root = tmp_path_factory.mktemp("training")
    # One intra-op thread: these models are tiny, and on a busy shared CPU OpenMP's
    # spinning threads make a step ten times slower, not faster.
    torch.set_num_threads(1)
    return {
        "model": str(tiny_model),
        "data": str(write_dataset(root / "ds")),
        "root": root,
    }


# Small and fast, but enough signal: a random tiny model learns the repeated snippets quickly.
BASE = {
    "max_seq_length": 64,
    "batch_size": 4,
    "gradient_accumulation_steps": 1,
    "learning_rate": 5e-3,
    "warmup_ratio": 0.1,
    "save_steps": 100,
    "eval_steps": 100,
    "max_eval_rows": 8,
    "lora": {"r": 8, "alpha": 16},
}


def settings(**overrides) -> TrainSettings:
    data = json.loads(json.dumps(BASE))
    lora = overrides.pop("lora", {})
    data.update(overrides)
    data["lora"].update(lora)
    return from_dict(data)


def job(env, out: Path, stage: int = 1, **kw) -> TrainJob:
    return validate_job(
        TrainJob(
            base_model=env["model"],
            dataset_dir=env["data"],
            stage=stage,
            output_dir=str(out),
            settings=kw.pop("settings", settings()),
            **kw,
        )
    )


@pytest.fixture(scope="module")
def stage1(env):
    """A QLoRA stage-1 run through the RPC function, as the servicer runs it."""
    out = env["root"] / "stage1"
    req = worker_pb2.TrainRequest(
        job_id="s1",
        base_model=env["model"],
        dataset_dir=env["data"],
        stage=1,
        output_dir=str(out),
        general_eval_path=str(Path(env["data"]) / "general.jsonl"),
        config=worker_pb2.TrainConfig(
            max_steps=12, learning_rate=5e-3, batch_size=4, max_seq_length=64,
            save_steps=6, eval_steps=6, quantization="nf4",
            lora=worker_pb2.LoraConfig(r=8, alpha=16),
        ),
    )  # fmt: skip
    events = list(train_events(req, threading.Event()))
    return out, events


def test_qlora_stage_eval_loss_falls(stage1):
    out, events = stage1
    assert events[-1].kind == K.COMPLETED, events[-1].message
    assert all(e.job_id == "s1" for e in events)
    progress = [e for e in events if e.kind == K.PROGRESS and e.phase == "stage1"]
    assert [e.step for e in progress] == list(range(1, 13))
    first = progress[0]
    for key in ("loss", "learning_rate", "grad_norm", "epoch", "tokens_per_s"):
        assert key in first.metrics, key
    assert first.total_steps == 12 and first.eta_ms > 0 and progress[-1].elapsed_ms > 0
    evals = [e.metrics["eval_loss"] for e in events if e.kind == K.METRICS and "eval_loss" in e.metrics]
    assert len(evals) == 2
    saved = [e.artifact_path for e in events if e.kind == K.CHECKPOINT]
    assert [Path(p).name for p in saved] == ["checkpoint-6", "checkpoint-12"]

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["eval_loss"] < metrics["eval_loss_before"] - 0.05
    assert metrics["general_eval_loss_before"] > 0 and metrics["general_eval_loss"] > 0
    assert metrics["eval_loss_change_pct"] < 0
    assert events[-1].metrics["eval_loss"] == pytest.approx(metrics["eval_loss"])
    for name in (
        "adapter_config.json",
        "adapter_model.safetensors",
        "adapter_meta.json",
    ):
        assert (out / name).is_file(), name
    meta = json.loads((out / "adapter_meta.json").read_text())
    assert meta["merged"] is False and meta["serving_artifact"] == "adapter"
    assert meta["quantization"] == "nf4" and meta["stage"] == 1
    assert any((out / "tensorboard").iterdir())
    assert checkpoints.is_complete(out / "checkpoints" / "checkpoint-12")
    position = json.loads((out / "checkpoints" / "checkpoint-12" / "data_position.json").read_text())
    assert position["global_step"] == 12 and position["sequences_seen"] == 12 * 4 * 4  # batch 4, default accumulation 4
    assert not list(out.glob(".export-*"))


def test_plain_lora_packing_checkpointing_accumulation_and_ewc(env):
    out = env["root"] / "plain"
    s = settings(max_steps=5, quantization="none", packing=True, regularizer="ewc",
                 regularizer_weight=1.0, eval_steps=5, gradient_checkpointing=True,
                 gradient_accumulation_steps=2)  # fmt: skip
    events = run_job(
        job(
            env,
            out,
            stage=2,
            settings=s,
            general_eval_path=str(Path(env["data"]) / "general.jsonl"),
        )
    )
    assert kinds(events)[-1] == "COMPLETED", events[-1].message
    from safetensors import safe_open

    with safe_open(str(checkpoints.guard_path(out)), "pt") as fh:
        keys = list(fh.keys())
    assert any(k.startswith("fisher.") for k in keys) and any(k.startswith("ref.") for k in keys)
    reg = [e.metrics["reg_loss"] for e in events if e.kind == "PROGRESS" and e.phase == "stage2"]
    assert len(reg) == 5 and reg[0] == 0.0 and reg[-1] > 0
    meta = json.loads((out / "adapter_meta.json").read_text())
    assert meta["quantization"] == "none"
    data = json.loads((out / "metrics.json").read_text())["data"]["train"]
    assert data["rows_chat"] == 24 and data["rows_fim"] == 24


def test_ewc_without_a_general_set_estimates_on_the_train_splits_replay_rows(env):
    # The fixture's stage-1 eval split has no replay rows; its train split has 8.
    out = env["root"] / "ewc-replay"
    events = run_job(job(env, out, settings=settings(max_steps=2, quantization="none", regularizer="ewc")))
    assert kinds(events)[-1] == "COMPLETED", events[-1].message
    from safetensors import safe_open

    with safe_open(str(checkpoints.guard_path(out)), "pt") as fh:
        keys = list(fh.keys())
    assert any(k.startswith("fisher.") for k in keys)


def test_resume_matches_an_uninterrupted_run(env):
    s = settings(max_steps=10, save_steps=2)
    whole = run_job(job(env, env["root"] / "whole", settings=s))
    assert kinds(whole)[-1] == "COMPLETED"

    out = env["root"] / "interrupted"
    cancel = threading.Event()
    first = []
    interrupted = job(env, out, settings=s)
    # The job runs in its own thread and cancel is set from the consumer's, as a
    # servicer's CancelJob would; the trainer stops at the next step boundary.
    for event in run_streaming(lambda emit, c: run_training(interrupted, emit, c), cancel, "t"):
        first.append(event)
        if event.kind == "PROGRESS" and event.step == 3:
            cancel.set()
    assert first[-1].kind == "CANCELLED", first[-1].message
    ckpt = Path(first[-1].artifact_path)
    assert checkpoints.is_complete(ckpt)
    stopped_at = int(ckpt.name.removeprefix("checkpoint-"))
    assert 3 <= stopped_at < 10
    assert not (out / "adapter_model.safetensors").exists()  # cancelled: no final artifact

    second = run_job(job(env, out, settings=s, resume=True))
    assert kinds(second)[-1] == "COMPLETED", second[-1].message
    resumed = losses_by_step(second)
    assert min(resumed) == stopped_at + 1 and max(resumed) == 10  # same step count
    expected = losses_by_step(whole)
    for step, loss in resumed.items():
        assert loss == pytest.approx(expected[step], rel=1e-4, abs=1e-4), step
    # The baseline (before training) is the first attempt's, not re-measured on trained weights.
    m_whole = json.loads((env["root"] / "whole" / "metrics.json").read_text())
    m_resumed = json.loads((out / "metrics.json").read_text())
    assert m_resumed["eval_loss_before"] == pytest.approx(m_whole["eval_loss_before"])
    assert m_resumed["eval_loss"] == pytest.approx(m_whole["eval_loss"], rel=1e-4)
    assert m_resumed["steps"] == 10


def test_l2_guard_changes_the_loss(env):
    plain = run_job(job(env, env["root"] / "noreg", settings=settings(max_steps=6)))
    guarded = run_job(
        job(
            env,
            env["root"] / "l2",
            settings=settings(max_steps=6, regularizer="l2", regularizer_weight=50.0),
        )
    )
    assert kinds(guarded)[-1] == "COMPLETED"
    a, b = losses_by_step(plain), losses_by_step(guarded)
    assert a[1] == pytest.approx(b[1], abs=1e-6)  # at the start the weights are the anchor
    assert all(b[s] > a[s] for s in range(3, 7))  # then the penalty is part of the loss
    reg = [e.metrics["reg_loss"] for e in guarded if e.kind == "PROGRESS" and e.phase == "stage1"]
    assert reg[0] == 0.0 and reg[-1] > 0


def test_the_last_step_is_evaluated_once_by_the_recipe_not_twice(env):
    events = run_job(job(env, env["root"] / "once", settings=settings(max_steps=3, eval_steps=2)))
    assert kinds(events)[-1] == "COMPLETED", events[-1].message
    during = [e.step for e in events if e.kind == "METRICS" and "eval_loss" in e.metrics]
    assert during == [2]  # on the eval_steps grid; step 3 is the recipe's measurement
    assert events[-1].metrics["eval_loss"] > 0


def test_trained_embeddings_give_a_merged_artifact(env):
    out = env["root"] / "emb"
    s = settings(max_steps=3, save_steps=3, lora={"train_embeddings": True, "embeddings_learning_rate": 1e-2})
    events = run_job(job(env, out, settings=s))
    assert kinds(events)[-1] == "COMPLETED", events[-1].message
    meta = json.loads((out / "adapter_meta.json").read_text())
    assert meta["merged"] is True
    assert meta["serving_artifact"] == "merged" and meta["merged_model_path"] == "merged"
    assert "embeddings" in meta["trained"]
    assert json.loads((out / "metrics.json").read_text())["merged"] is True
    from transformers import AutoModelForCausalLM

    merged = AutoModelForCausalLM.from_pretrained(out / "merged")
    base = AutoModelForCausalLM.from_pretrained(env["model"])
    emb_m, emb_b = (
        merged.get_input_embeddings().weight,
        base.get_input_embeddings().weight,
    )
    assert not torch.allclose(emb_m, emb_b)
    assert (out / "merged" / "tokenizer.json").is_file()
    # The embeddings are their own optimizer group, with their own learning rate.
    groups = torch.load(out / "checkpoints" / "checkpoint-3" / "optimizer.pt")["param_groups"]
    assert sorted(g["initial_lr"] for g in groups) == [5e-3, 1e-2]


def test_continuing_the_previous_stage_adapter(env, stage1):
    from safetensors.torch import load_file

    stage1_out, _ = stage1
    out = env["root"] / "stage2"
    s = settings(max_steps=3, regularizer="l2")
    events = run_job(job(env, out, stage=2, settings=s, init_adapter=str(stage1_out)))
    assert kinds(events)[-1] == "COMPLETED", events[-1].message
    previous = load_file(str(stage1_out / "adapter_model.safetensors"))
    anchor = load_file(str(checkpoints.guard_path(out)))
    anchored = {k.removeprefix("ref.").replace(".default", ""): v for k, v in anchor.items()}
    assert set(anchored) == set(previous)
    for key, value in previous.items():
        assert torch.equal(anchored[key], value.float()), key  # starts exactly where stage 1 ended
    meta = json.loads((out / "adapter_meta.json").read_text())
    assert meta["init_adapter"] == str(stage1_out) and meta["stage"] == 2


def test_out_of_memory_ends_the_job_with_a_clear_message(env, monkeypatch):
    from python_worker.training.trainer import GuardedSFTTrainer

    def oom(self, *args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(GuardedSFTTrainer, "training_step", oom)
    events = run_job(
        job(
            env,
            env["root"] / "oom",
            settings=settings(max_steps=3, quantization="none"),
        )
    )
    assert kinds(events)[-1] == "FAILED"
    assert "out of memory at step 0" in events[-1].message
    assert "batch_size" in events[-1].message


def test_closing_the_stream_cancels_and_checkpoints(env):
    out = env["root"] / "closed"
    req = worker_pb2.TrainRequest(
        job_id="c", base_model=env["model"], dataset_dir=env["data"], stage=1, output_dir=str(out),
        config=worker_pb2.TrainConfig(max_steps=50, max_seq_length=64, quantization="none",
                                      lora=worker_pb2.LoraConfig(r=4)),
    )  # fmt: skip
    cancel = threading.Event()
    stream = train_events(req, cancel)
    for event in stream:
        if event.kind == K.PROGRESS and event.step == 2:
            break
    stream.close()  # the client went away: returns once the job has stopped
    assert cancel.is_set()
    assert checkpoints.latest(out) is not None
    assert not [t for t in threading.enumerate() if t.name == "train-c"]


def test_evaluate_reports_loss_per_dataset(env, stage1):
    stage1_out, _ = stage1
    out = env["root"] / "eval.json"
    datasets = [
        str(Path(env["data"]) / "stage1" / "eval.jsonl"),
        str(Path(env["data"]) / "stage2" / "eval.jsonl"),
    ]
    with_adapter = list(
        evaluate_events(
            worker_pb2.EvaluateRequest(
                job_id="e", model=env["model"], adapter=str(stage1_out), loss_datasets=datasets,
                output_path=str(out),
            ),
            threading.Event(),
        )
    )  # fmt: skip
    done = with_adapter[-1]
    assert done.kind == K.COMPLETED, done.message
    for name in ("stage1/eval", "stage2/eval"):
        assert done.metrics[f"{name}.loss"] > 0
        assert done.metrics[f"{name}.perplexity"] > 1
        assert done.metrics[f"{name}.tokens"] > 0
    report = json.loads(out.read_text())
    assert report["datasets"]["stage1/eval"]["loss"] == pytest.approx(done.metrics["stage1/eval.loss"])
    base_only = list(
        evaluate_events(
            worker_pb2.EvaluateRequest(model=env["model"], loss_datasets=datasets[:1]),
            threading.Event(),
        )
    )
    assert base_only[-1].metrics["stage1/eval.loss"] > done.metrics["stage1/eval.loss"]
    # A token cap keeps whole rows from the start: one token means the first row only.
    first_row = list(
        evaluate_events(
            worker_pb2.EvaluateRequest(model=env["model"], loss_datasets=datasets[:1], max_loss_tokens=1),
            threading.Event(),
        )
    )
    assert 0 < first_row[-1].metrics["stage1/eval.tokens"] < base_only[-1].metrics["stage1/eval.tokens"]


def test_packed_rows_do_not_attend_to_each_other(env):
    """Packing keeps documents apart: position_ids restart per document, and the mask follows them.

    The trainer collates packed rows batch by row (`PackedRowsCollator`) unless attention
    is flash's varlen kernel; the loss must equal trl's padding-free collation of the same rows.
    """
    from transformers import AutoModelForCausalLM
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from python_worker.training.collator import PackedRowsCollator, needs_row_batches

    model = AutoModelForCausalLM.from_pretrained(env["model"]).eval()
    assert needs_row_batches(model)  # sdpa on the CPU
    a, b, c = [5, 6, 7, 8, 9], [11, 12, 13], [21, 22, 23, 24]
    rows = [{"input_ids": a + b, "seq_lengths": [len(a), len(b)]}, {"input_ids": c, "seq_lengths": [len(c)]}]
    batch = PackedRowsCollator(pad_token_id=0)(rows)
    assert "attention_mask" not in batch
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3, 4, 0, 1, 2], [0, 1, 2, 3, 0, 0, 0, 0]]
    # No label crosses a document boundary or lands on padding.
    assert batch["labels"].tolist() == [[-100, 6, 7, 8, 9, -100, 12, 13], [-100, 22, 23, 24] + [-100] * 4]
    with torch.no_grad():
        alone = model(input_ids=torch.tensor([b]), use_cache=False).logits
        second = model(input_ids=torch.tensor([c]), use_cache=False).logits
        packed = model(**{k: v for k, v in batch.items() if k != "labels"}, use_cache=False).logits
        ours = model(**batch, use_cache=False).loss
        flat = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)(rows)
        trl_loss = model(input_ids=flat["input_ids"], position_ids=flat["position_ids"],
                         labels=flat["labels"], use_cache=False).loss  # fmt: skip
    assert torch.allclose(packed[:1, len(a) :], alone, atol=1e-5)
    assert torch.allclose(packed[1:, : len(c)], second, atol=1e-5)
    assert torch.allclose(ours, trl_loss, atol=1e-5)


def packed_trainer(env, s: TrainSettings, out: Path):
    """The stage trainer on the tiny model over eight rows of 9 to 40 tokens."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from python_worker.training.model import placement
    from python_worker.training.trainer import build

    rows = [list(range(5, 5 + n)) for n in (30, 20, 12, 40, 9, 25, 33, 14)]
    train = Dataset.from_dict({"input_ids": rows, "labels": rows})
    model = AutoModelForCausalLM.from_pretrained(env["model"])
    tokenizer = AutoTokenizer.from_pretrained(env["model"])
    return build(model, tokenizer, train, None, s, out, placement(), [])


def test_packed_training_batches_keep_one_row_per_batch_entry(env, tmp_path):
    """With packing on the CPU the trainer's batches are (batch, length), not one long row."""
    from python_worker.training.collator import PackedRowsCollator

    s = settings(packing=True, max_steps=1, batch_size=2)
    trainer = packed_trainer(env, s, tmp_path / "out")
    assert isinstance(trainer.data_collator, PackedRowsCollator)
    batch = next(iter(trainer.get_train_dataloader()))
    assert batch["input_ids"].shape[0] == 2
    assert batch["input_ids"].shape[1] <= s.max_seq_length
    assert "attention_mask" not in batch


def test_plain_loss_matches_trls_fused_lm_head(env, tmp_path):
    """Small logits are computed whole (faster); loss, gradient and token accuracy match trl's tiled head."""
    from python_worker.training.trainer import plain_loss_fits

    s = settings(packing=True, max_steps=1, batch_size=4)
    assert plain_loss_fits(s, 8192) and not plain_loss_fits(s.__class__(batch_size=8, max_seq_length=2048), 151_936)
    seen = []
    for plain in (True, False):
        torch.manual_seed(0)
        trainer = packed_trainer(env, s, tmp_path / f"out-{plain}")
        model = trainer.model
        assert trainer.plain_loss
        trainer.plain_loss = plain
        batch = next(iter(trainer.get_train_dataloader()))
        model.train()
        loss = trainer.compute_loss(model, dict(batch))
        loss.backward()
        grad = model.get_output_embeddings().weight.grad.clone()
        seen.append((loss.detach(), grad, trainer._metrics["train"]["mean_token_accuracy"][-1], trainer.tokens_trained))
    (plain_loss, plain_grad, plain_acc, plain_tokens), (fused_loss, fused_grad, fused_acc, fused_tokens) = seen
    assert torch.allclose(plain_loss, fused_loss, atol=1e-5)
    assert torch.allclose(plain_grad, fused_grad, atol=1e-6)
    assert abs(plain_acc - fused_acc) < 1e-6
    # Every real token of the batch's packed rows counts, padding does not.
    assert plain_tokens == fused_tokens == int(batch["num_tokens"])


def test_cancelled_call_through_the_servicer_helper_checkpoints(env):
    """The servicer advances these iterators with threads.iterate_in_thread; a cancelled call stops the job."""
    import asyncio
    import time

    from python_worker.threads import iterate_in_thread

    out = env["root"] / "async"
    req = worker_pb2.TrainRequest(
        job_id="a", base_model=env["model"], dataset_dir=env["data"], stage=1, output_dir=str(out),
        config=worker_pb2.TrainConfig(max_steps=50, max_seq_length=64, quantization="none",
                                      lora=worker_pb2.LoraConfig(r=4)),
    )  # fmt: skip
    cancel = threading.Event()
    seen: list[int] = []

    async def consume() -> None:
        async for event in iterate_in_thread(train_events(req, cancel), name="train"):
            if event.kind == K.PROGRESS and event.phase == "stage1":
                seen.append(event.step)

    async def main() -> None:
        task = asyncio.create_task(consume())
        deadline = time.monotonic() + 120
        while not seen and time.monotonic() < deadline:  # poll with a deadline
            await asyncio.sleep(0.05)
        task.cancel()  # the client cancelled the call
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    deadline = time.monotonic() + 120
    while any(t.name == "train-a" for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(t.name == "train-a" for t in threading.enumerate())
    assert cancel.is_set()
    assert checkpoints.latest(out) is not None


def test_early_stopping_states_its_reason(env):
    # A threshold no eval can beat: every eval after the first counts as "no improvement".
    s = settings(max_steps=20, eval_steps=2, early_stopping_patience=1,
                 early_stopping_threshold=100.0, quantization="none")  # fmt: skip
    out = env["root"] / "early"
    events = run_job(job(env, out, settings=s))
    assert kinds(events)[-1] == "COMPLETED", events[-1].message
    assert events[-1].step == 4
    assert "early stop: eval_loss did not improve by more than 100" in events[-1].message
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["early_stopped"] is True and metrics["steps"] == 4
    assert "best" in metrics["early_stop_reason"]
