"""Concurrent streams through the full path against a static batch in-process.

    .venv/bin/python bench/concurrent_streams.py [--tokens 64] [--rounds 5]

Full path: N clients at once, each streaming `/v1/completions` (greedy, its own
prompt) through HTTP -> yaws -> Elixir host -> Port -> Python worker, whose
scheduler decodes them as one batch. Baseline: one static batched
`model.generate` of the same prompts in this process (left-padded, greedy).
Rounds alternate full and baseline; medians are reported, since the machine is
shared and noisy.

For N in 1, 4 and 20: aggregate tokens/s (all tokens over the wall time of the
round), time to first token p50/p95 and the inter-token latency p95 (the gap
between SSE text events divided by the tokens each carried; tokens that are
ready together share an event). `batch_ratio` is the full path at 20 streams
over the static batch of 20 (target >= 0.7); `ttft_p95_ratio_20_vs_1` is the
p95 time to first token at 20 streams over the single stream's (target <= 5).

Ends with `emit("concurrent_streams", ...)`; saved to
bench/results/concurrent_streams.json only at the default sizes.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results import emit
from bench.sse_client import timed_completion
from tests.host_process import TINY_MODEL, HostProcess

DEFAULT_TOKENS = 64
DEFAULT_ROUNDS = 5
COUNTS = (1, 4, 20)
PROMPTS = [
    f"defmodule Bench{i} do\n" + "  use GenServer\n" * (i % 3) + f"  def handle_call(:op{i}, _from, state) do\n"
    for i in range(max(COUNTS))
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def stream(port: int, prompt: str, tokens: int, barrier: threading.Barrier, out: dict[str, Any]) -> None:
    """One streamed completion: TTFT, per-event gaps and the completion tokens."""
    # Every client starts together.
    timing = timed_completion(port, prompt, tokens, timeout=300, before_request=barrier.wait)
    out.update(ttft=timing.ttft, gaps=timing.gaps, tokens=timing.completion_tokens, end=timing.end, start=timing.start)


def http_round(port: int, n: int, tokens: int) -> dict[str, Any]:
    barrier = threading.Barrier(n)
    results: list[dict[str, Any]] = [{} for _ in range(n)]
    threads = [threading.Thread(target=stream, args=(port, PROMPTS[i], tokens, barrier, results[i])) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = max(r["end"] for r in results) - min(r["start"] for r in results)
    total = sum(r["tokens"] for r in results)
    # An event after a gap carries the tokens produced during it: spread the gap over them.
    per_token = [
        g / max(1, round(total / max(1, sum(len(r["gaps"]) + 1 for r in results)))) for r in results for g in r["gaps"]
    ]
    return {
        "tokens_per_s": total / wall,
        "ttft_p50_ms": percentile([r["ttft"] for r in results], 0.5) * 1000,
        "ttft_p95_ms": percentile([r["ttft"] for r in results], 0.95) * 1000,
        "itl_p95_ms": percentile(per_token, 0.95) * 1000,
        "tokens": total,
    }


def static_round(model: Any, tokenizer: Any, n: int, tokens: int) -> float:
    """Tokens/s of one left-padded greedy model.generate over the first n prompts."""
    import torch

    batch = tokenizer(PROMPTS[:n], return_tensors="pt", padding=True)
    start = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(**batch, max_new_tokens=tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    elapsed = time.perf_counter() - start
    generated = out[:, batch["input_ids"].shape[1] :]
    eos = model.generation_config.eos_token_id
    count = 0
    for row in generated.tolist():
        # Count up to and including the first end-of-sequence, as the server does.
        count += row.index(eos) + 1 if eos in row else len(row)
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=DEFAULT_TOKENS, help="tokens per stream")
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS, help="measured rounds per N")
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(TINY_MODEL, padding_side="left")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(TINY_MODEL, dtype=torch.float32).eval()

    per_n: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as data_dir, HostProcess(Path(data_dir), {"WORKER_GRPC": "false"}) as host:
        http_round(host.port, 4, 8)  # warm both paths
        static_round(model, tokenizer, 4, 8)
        for n in COUNTS:
            full, static = [], []
            for _ in range(args.rounds):
                full.append(http_round(host.port, n, args.tokens))
                static.append(static_round(model, tokenizer, n, args.tokens))
            per_n[str(n)] = {
                "full_tokens_per_s": round(statistics.median(r["tokens_per_s"] for r in full), 1),
                "static_tokens_per_s": round(statistics.median(static), 1),
                "ttft_p50_ms": round(statistics.median(r["ttft_p50_ms"] for r in full), 2),
                "ttft_p95_ms": round(statistics.median(r["ttft_p95_ms"] for r in full), 2),
                "itl_p95_ms": round(statistics.median(r["itl_p95_ms"] for r in full), 2),
                "round_ratios": [round(f["tokens_per_s"] / s, 3) for f, s in zip(full, static, strict=True)],
            }
    top = per_n[str(max(COUNTS))]
    result = {
        "model": TINY_MODEL.name,
        "tokens_per_stream": args.tokens,
        "rounds": args.rounds,
        "streams": per_n,
        "batch_ratio": round(top["full_tokens_per_s"] / top["static_tokens_per_s"], 3),
        "ttft_p95_ratio_20_vs_1": round(top["ttft_p95_ms"] / per_n["1"]["ttft_p95_ms"], 2),
    }
    emit("concurrent_streams", result, save=(args.tokens, args.rounds) == (DEFAULT_TOKENS, DEFAULT_ROUNDS))


if __name__ == "__main__":
    main()
