"""Training throughput: our Train path against a plain trl SFTTrainer script.

    .venv/bin/python bench/train_throughput.py          # CPU: the tiny model, QLoRA NF4
    .venv/bin/python bench/train_throughput.py --gpu    # CUDA: a random 1.5B Qwen2, + MFU

Both sides get the same model, data, sequence length and hyperparameters (LoRA
r=32/alpha=64/dropout 0.05 on all projections, NF4 double quant, lr 2e-4, cosine,
warmup 3%, grad norm 0.3, batch size, gradient checkpointing as given), in the
same run. Each side runs in its own subprocess, so peak memory is its own: RSS
sampled with psutil (plus torch.cuda.max_memory_allocated on a GPU).

Adapter dtype, the same on both sides: trl casts QLoRA adapter weights to bf16
(the QLoRA paper's recipe for bf16 GPUs). Our path keeps that cast when the
compute dtype is bf16 (a GPU) and undoes it otherwise, so the plain-trl side
does exactly the same here. On the CPU the compute dtype is fp32, and fp32
adapters are the right choice there: bf16 weights would only cost precision
(Adam's small updates round away in bf16's 8-bit mantissa) and speed (CPUs
without AVX512-BF16/AMX emulate bf16 matmuls; on this machine's EPYC a step
with bf16 adapters took 1.6x to 2.2x as long).

Timing: non-padding tokens trained (trl's counter on the trl side; our trainer
keeps its own, which counts the same non-padding tokens) over the
span from the trainer's train-begin to its last step log, measured by the bench
itself on both sides, in wall-clock time and in this process's CPU time (which
a neighbour loading a shared machine disturbs far less). Model loading and our
before/after eval passes are outside the span. After one short untimed
warm-up run of each side, rounds alternate ABBA
(--repeats runs per side) and each side's figure is its median run, with every
run listed, so the spread is visible; the headline ratio is ours/trl of the
medians.

Ends with `emit("train_throughput", ...)` (or "train_throughput_gpu"): one JSON
line, saved to bench/results/ at the default sizes. `--gpu` without CUDA prints
{"skipped": true, "reason": ...} and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.results import emit

TINY = REPO / "data" / "models" / "tiny-elixir"
MARK = "RESULT "
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

# Dense bf16 peak of the GPUs we may meet, for MFU (tensor cores, no sparsity).
PEAK_BF16_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12}

# Qwen2-1.5B's shape (random weights: throughput does not depend on the values).
QWEN2_1_5B = {
    "vocab_size": 151936,
    "hidden_size": 1536,
    "intermediate_size": 8960,
    "num_hidden_layers": 28,
    "num_attention_heads": 12,
    "num_key_value_heads": 2,
    "max_position_embeddings": 32768,
    "tie_word_embeddings": True,
}
# A smoke-test shape for exercising the --gpu code path on a CPU (--gpu-smoke).
SMOKE = {**QWEN2_1_5B, "vocab_size": 8192, "hidden_size": 128, "intermediate_size": 384,
         "num_hidden_layers": 2, "num_attention_heads": 4}  # fmt: skip


# -- data ------------------------------------------------------------------------


def synthetic_rows(n: int, max_functions: int, seed: int = 0) -> list[dict[str, str]]:
    """Elixir-like modules of varied length: deterministic, no files needed."""
    rng = random.Random(seed)
    verbs = ["fetch", "put", "update", "delete", "merge", "parse", "render", "encode"]
    nouns = ["user", "order", "cart", "token", "session", "config", "event", "item"]
    rows = []
    for i in range(n):
        lines = [f"defmodule Bench.Mod{i} do", f'  @moduledoc "Module {i} of the benchmark."']
        for _ in range(rng.randint(1, max_functions)):
            fn = f"{rng.choice(verbs)}_{rng.choice(nouns)}"
            arg = rng.choice(nouns)
            lines += [
                f'  @doc "{fn.replace("_", " ").capitalize()}."',
                f"  def {fn}(%{{{arg}: {arg}}} = state, opts \\\\ []) do",
                f"    {arg} |> Map.put(:updated, true) |> then(&Map.merge(state, %{{{arg}: &1}}))",
                "  end",
            ]
        lines.append("end")
        rows.append({"text": "\n".join(lines) + "\n", "source": f"bench{i % 11}", "path": "lib/b.ex"})
    return rows


def write_dataset(root: Path, rows: list[dict[str, str]]) -> Path:
    (root / "stage1").mkdir(parents=True, exist_ok=True)
    with (root / "stage1" / "train.jsonl").open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    return root


# -- measuring -------------------------------------------------------------------


class PeakRss:
    """Peak resident memory of this process, sampled in the background."""

    def __init__(self, interval: float = 0.02) -> None:
        import psutil

        self.proc = psutil.Process()
        self.peak = self.proc.memory_info().rss
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return max(self.peak, self.proc.memory_info().rss)


class SpanClock:
    """Wall and process-CPU time from train-begin to the last step log."""

    def __init__(self) -> None:
        self.t0 = self.c0 = self.t1 = self.c1 = 0.0

    def begin(self) -> None:
        self.t0, self.c0 = time.monotonic(), time.process_time()
        self.t1, self.c1 = self.t0, self.c0

    def mark(self) -> None:
        self.t1, self.c1 = time.monotonic(), time.process_time()

    def span(self) -> dict[str, float]:
        return {"train_s": self.t1 - self.t0, "cpu_s": self.c1 - self.c0}


def device_info() -> dict[str, Any]:
    import torch

    if torch.cuda.is_available():
        return {"device": "cuda", "gpu": torch.cuda.get_device_name(0)}
    return {"device": "cpu", "cpu_count": os.cpu_count()}


# -- the two sides (each runs in a child process) ----------------------------------


def run_ours(spec: dict[str, Any]) -> dict[str, Any]:
    from python_worker.training.config import from_dict
    from python_worker.training.job import TrainJob, validate_job
    from python_worker.training.recipe import run_training

    settings = from_dict(
        {
            "max_steps": spec["steps"],
            "batch_size": spec["batch_size"],
            "gradient_accumulation_steps": 1,
            "max_seq_length": spec["seq_len"],
            "learning_rate": 2e-4,
            "warmup_ratio": 0.03,
            "max_grad_norm": 0.3,
            "quantization": spec["quantization"],
            "gradient_checkpointing": spec["gradient_checkpointing"],
            "packing": spec["packing"],
            "save_steps": 10**9,  # the plain script saves nothing either
            "eval_steps": 10**9,
            "logging_steps": 1,
            "seed": 42,
        }
    )
    job = validate_job(TrainJob(spec["model"], spec["dataset"], 1, spec["out"], settings=settings, job_id="bench"))
    clock = SpanClock()
    progress: list[dict[str, Any]] = []
    final: list[str] = []

    def on_event(event) -> None:
        # The "training started" log comes from the trainer's train-begin hook.
        if event.kind == "LOG" and event.phase == "stage1" and event.message.startswith("training "):
            clock.begin()
        if event.kind == "PROGRESS" and event.phase == "stage1":
            clock.mark()
            progress.append(dict(event.metrics))
        if event.kind in ("COMPLETED", "FAILED", "CANCELLED"):
            final.append(f"{event.kind}: {event.message}")

    run_training(job, on_event, threading.Event())
    if not final or not final[0].startswith("COMPLETED"):
        raise SystemExit(f"our Train path did not complete: {final}")
    last = progress[-1]
    return {"tokens": last["tokens_seen"], **clock.span(), "final_loss": last["loss"], "steps": len(progress)}


def run_trl(spec: dict[str, Any]) -> dict[str, Any]:
    """What a plain trl QLoRA script does, same knobs; no extras."""
    import torch
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig, TrainerCallback
    from transformers.trainer_callback import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    cuda = torch.cuda.is_available()
    dtype = torch.bfloat16 if cuda else torch.float32
    kwargs: dict[str, Any] = {"dtype": dtype}
    if spec["quantization"] == "nf4":
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
        )
        if cuda:
            kwargs["device_map"] = {"": 0}
    tok = AutoTokenizer.from_pretrained(spec["model"])
    model = AutoModelForCausalLM.from_pretrained(spec["model"], **kwargs)
    dataset = load_dataset("json", data_files=str(Path(spec["dataset"]) / "stage1" / "train.jsonl"))
    args = SFTConfig(
        output_dir=spec["out"],
        max_steps=spec["steps"],
        per_device_train_batch_size=spec["batch_size"],
        gradient_accumulation_steps=1,
        learning_rate=2e-4,
        lr_scheduler_type="cosine",
        warmup_steps=0.03,
        max_grad_norm=0.3,
        max_length=spec["seq_len"],
        packing=spec["packing"],
        gradient_checkpointing=spec["gradient_checkpointing"],
        bf16=cuda,
        use_cpu=not cuda,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        seed=42,
        data_seed=42,  # the same batch order as our path
    )

    class Clock(TrainerCallback):
        def __init__(self) -> None:
            self.span = SpanClock()
            self.logs: list[dict] = []

        def on_train_begin(self, args, state, control, **kw):
            self.span.begin()

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                self.span.mark()
                self.logs.append(dict(logs))

    clock = Clock()
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=dataset["train"],
        processing_class=tok,
        peft_config=LoraConfig(r=32, lora_alpha=64, lora_dropout=0.05, target_modules=TARGETS, task_type="CAUSAL_LM"),
        callbacks=[clock],
    )
    trainer.remove_callback(PrinterCallback)
    if dtype != torch.bfloat16:
        # Undo trl's bf16 cast of the QLoRA adapter exactly as our path does with
        # fp32 compute (see the module docstring): the same adapter dtype on both sides.
        for param in trainer.model.parameters():
            if param.requires_grad:
                param.data = param.data.to(dtype)
    trainer.train()
    logs = clock.logs[-1]
    return {
        "tokens": float(logs["num_tokens"]),
        **clock.span.span(),
        "final_loss": float(logs["loss"]),
        "steps": len(clock.logs),
    }


def child(side: str, spec: dict[str, Any]) -> None:
    import torch

    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    rss = PeakRss()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    result = run_ours(spec) if side == "ours" else run_trl(spec)
    result["tokens_per_s"] = result["tokens"] / result["train_s"] if result["train_s"] else 0.0
    result["tokens_per_cpu_s"] = result["tokens"] / result["cpu_s"] if result["cpu_s"] else 0.0
    result["peak_rss_mb"] = round(rss.stop() / 2**20, 1)
    result["threads"] = torch.get_num_threads()
    if torch.cuda.is_available():
        result["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    print(MARK + json.dumps(result), flush=True)


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median run's figures, every run's throughput (the spread), the highest peak memory."""
    out = dict(sorted(runs, key=lambda r: r["tokens_per_s"])[(len(runs) - 1) // 2])
    for key in ("tokens_per_s", "tokens_per_cpu_s"):
        values = [r[key] for r in runs]
        out[key] = statistics.median(values)
        out[f"{key}_runs"] = [round(v, 1) for v in values]
    out["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    if "peak_gpu_mb" in out:
        out["peak_gpu_mb"] = max(r["peak_gpu_mb"] for r in runs)
    return out


def spawn(side: str, spec: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--_child", side, "--_spec", json.dumps(spec)],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(MARK):
            return json.loads(line[len(MARK) :])
    raise SystemExit(f"{side} run failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")


# -- the GPU model ---------------------------------------------------------------


def make_random_model(out: Path, shape: dict[str, Any]) -> int:
    """A randomly initialised Qwen2 of the given shape, saved for from_pretrained."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    tok = AutoTokenizer.from_pretrained(TINY)  # ids < 8192 fit any of these vocabularies
    config = Qwen2Config(**shape, bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        model = Qwen2ForCausalLM(config).to(torch.bfloat16 if device == "cuda" else torch.float32)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    params = sum(p.numel() for p in model.parameters())
    del model
    return params


def flops_per_token(shape: dict[str, Any], params: int, seq_len: int) -> float:
    """Training FLOPs per token, PaLM-style: 6N plus causal attention (12·L·d·T)."""
    return 6 * params + 12 * shape["num_hidden_layers"] * shape["hidden_size"] * seq_len


def peak_flops(gpu_name: str) -> float | None:
    for key, value in PEAK_BF16_FLOPS.items():
        if key in gpu_name:
            return value
    return None


# -- main ------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--gpu", action="store_true", help="random 1.5B Qwen2 on CUDA, with MFU")
    p.add_argument("--gpu-smoke", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--steps", type=int, default=0, help="optimizer steps per side")
    p.add_argument("--seq-len", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="intra-op threads (default: 1 on the CPU, torch's on a GPU)")
    p.add_argument("--quantization", default="nf4", choices=["nf4", "none"])
    p.add_argument("--repeats", type=int, default=3, help="runs per side (ABBA order); the median counts")
    p.add_argument("--_child", choices=["ours", "trl"], help=argparse.SUPPRESS)
    p.add_argument("--_spec", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args._child:
        child(args._child, json.loads(args._spec))
        return 0

    import torch

    gpu = args.gpu or args.gpu_smoke
    if args.gpu and not torch.cuda.is_available():
        emit("train_throughput_gpu", {"skipped": True, "reason": "no CUDA device: the --gpu variant needs one"},
             save=False)  # fmt: skip
        return 0

    work = Path(tempfile.mkdtemp(prefix="train-bench-"))
    try:
        if gpu:
            shape = QWEN2_1_5B if args.gpu else SMOKE
            model_dir = work / "model"
            params = make_random_model(model_dir, shape)
            defaults = (30, 2048, 4) if args.gpu else (3, 128, 2)
        else:
            if not (TINY / "config.json").is_file():
                emit("train_throughput", {"skipped": True, "reason": f"{TINY} is missing: run `make model`"},
                     save=False)  # fmt: skip
                return 0
            model_dir, shape, params = TINY, None, 0
            defaults = (30, 256, 4)
        steps, seq_len, batch = args.steps or defaults[0], args.seq_len or defaults[1], args.batch_size or defaults[2]
        # CPU rows stay under 256 tokens, so neither side splits or truncates any.
        rows = synthetic_rows(max(400, steps * batch * (12 if gpu else 1)), 7 if gpu else 3)
        dataset = write_dataset(work / "data", rows)
        spec = {
            "model": str(model_dir),
            "dataset": str(dataset),
            "steps": steps,
            "seq_len": seq_len,
            "batch_size": batch,
            "quantization": args.quantization,
            # Packing fills 2048-token rows on the GPU; on the CPU rows fit as they are.
            "packing": gpu,
            "gradient_checkpointing": gpu,
            # One thread on the CPU: on a shared machine OpenMP's spin-waits count as
            # busy CPU time and stretch steps by whatever the neighbours do.
            "threads": args.threads or (0 if gpu else 1),
        }
        # ABBA order, median of each side: on a shared machine a neighbour's burst
        # can halve one run; alternating cancels slow drift, the median cancels bursts.
        order = (["ours", "trl", "trl", "ours"] * args.repeats)[: 2 * max(1, args.repeats)]
        # One short untimed run of each side first: the first process to train after
        # the bench starts pays for paging in libraries and kernels, which otherwise
        # costs whichever side goes first several percent.
        for side in ("ours", "trl"):
            spawn(side, {**spec, "steps": 2, "out": str(work / f"warmup-{side}")})
        runs: dict[str, list[dict[str, Any]]] = {"ours": [], "trl": []}
        for i, side in enumerate(order):
            runs[side].append(spawn(side, {**spec, "out": str(work / f"{side}{i}")}))
        results = {side: summary(side_runs) for side, side_runs in runs.items()}
        ours, trl = results["ours"], results["trl"]
        line: dict[str, Any] = {
            **device_info(),
            "model": "random Qwen2 1.5B shape" if args.gpu else ("smoke shape" if gpu else "tiny-elixir"),
            "quantization": args.quantization,
            "adapter_dtype": "bf16" if torch.cuda.is_available() else "fp32",
            "steps": steps,
            "seq_len": seq_len,
            "batch_size": batch,
            "repeats": len(runs["ours"]),
            "ours": ours,
            "trl": trl,
            "tokens_per_s_ratio": round(ours["tokens_per_s"] / trl["tokens_per_s"], 3),
            "tokens_per_cpu_s_ratio": round(ours["tokens_per_cpu_s"] / trl["tokens_per_cpu_s"], 3),
            "peak_rss_ratio": round(ours["peak_rss_mb"] / trl["peak_rss_mb"], 3),
        }
        if "peak_gpu_mb" in ours and "peak_gpu_mb" in trl:
            line["peak_gpu_ratio"] = round(ours["peak_gpu_mb"] / trl["peak_gpu_mb"], 3)
        if gpu and shape is not None:
            fpt = flops_per_token(shape, params, seq_len)
            peak = peak_flops(line.get("gpu", ""))
            line["parameters"] = params
            line["flops_per_token"] = fpt
            line["mfu_basis"] = "6N + 12*L*d*T FLOPs per token over dense bf16 peak"
            for side in ("ours", "trl"):
                achieved = results[side]["tokens_per_s"] * fpt
                results[side]["tflops"] = round(achieved / 1e12, 2)
                results[side]["mfu"] = round(achieved / peak, 4) if peak else None
        # Figures from smaller runs than the defaults are printed, not saved over the committed ones.
        default_sizes = not (args.steps or args.seq_len or args.batch_size or args.gpu_smoke)
        emit("train_throughput_gpu" if gpu else "train_throughput", line, save=default_sizes)
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
