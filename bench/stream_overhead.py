"""Streaming overhead of the full path against in-process generation.

    .venv/bin/python bench/stream_overhead.py [--tokens 128] [--rounds 5]

Full path: HTTP (`/v1/completions`, `stream: true`) -> yaws -> Elixir host ->
Port -> Python worker. Baseline: the worker's own transformers backend called
in this process. Same model (the tiny default), prompt, token count and greedy
decoding. Rounds alternate between the two and the medians are reported, since
these machines are noisy.

Ends with `emit("stream_overhead", ...)` (bench/results.py): one JSON line with
tokens/s of both, their ratio (full / direct; the target is >= 0.95), the time
to first token of both with the overhead in ms (target <= 20) and how many SSE
events carried the tokens (tokens that are ready together share one event).
The result is saved to bench/results/stream_overhead.json only at the default
sizes.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results import emit
from bench.sse_client import timed_completion
from python_worker.serving.base import LoadOptions, SamplingOptions, TextPrompt
from python_worker.serving.transformers_backend import TransformersBackend
from tests.host_process import TINY_MODEL, HostProcess

DEFAULT_TOKENS = 128
DEFAULT_ROUNDS = 5
PROMPT = "defmodule Stack do\n  use GenServer\n\n  def start_link(opts) do\n"


def direct_round(backend: TransformersBackend, tokens: int) -> tuple[float, float, int]:
    """(seconds to first token, total seconds, tokens) for one in-process generation."""

    async def run() -> tuple[float, float, int]:
        start = time.perf_counter()
        ids = backend.encode(TextPrompt(PROMPT))
        first = None
        count = 0
        async for delta in backend.generate(ids, SamplingOptions(max_tokens=tokens)):
            count += len(delta.token_ids)
            if first is None and delta.token_ids:
                first = time.perf_counter() - start
        return first or 0.0, time.perf_counter() - start, count

    return asyncio.run(run())


def http_round(port: int, tokens: int) -> tuple[float, float, int, int]:
    """(seconds to first token, total seconds, tokens, text events) for one streamed HTTP completion."""
    timing = timed_completion(port, PROMPT, tokens, timeout=120)
    return timing.ttft, timing.end - timing.start, timing.completion_tokens, len(timing.text_events)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=DEFAULT_TOKENS, help="tokens generated per round")
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS, help="measured rounds per path")
    args = parser.parse_args()

    backend = TransformersBackend()
    backend.load(LoadOptions(model=str(TINY_MODEL), device="cpu"))

    with tempfile.TemporaryDirectory() as data_dir, HostProcess(Path(data_dir), {"WORKER_GRPC": "false"}) as host:
        # Warm both paths (first-call allocations, JIT-ish caches) before measuring.
        direct_round(backend, 8)
        http_round(host.port, 8)
        direct, full = [], []
        for _ in range(args.rounds):
            direct.append(direct_round(backend, args.tokens))
            full.append(http_round(host.port, args.tokens))

    def summary(rounds: list[tuple[float, ...]]) -> tuple[float, float, int]:
        ttft = statistics.median(r[0] for r in rounds)
        tps = statistics.median(r[2] / r[1] for r in rounds)
        return ttft, tps, int(rounds[0][2])

    d_ttft, d_tps, d_tokens = summary(direct)
    f_ttft, f_tps, f_tokens = summary(full)
    # Each round pairs a direct and a full run taken back to back, so their ratio
    # is less exposed to load from other processes than the ratio of medians.
    ratios = [round((f[2] / f[1]) / (d[2] / d[1]), 3) for d, f in zip(direct, full, strict=True)]
    result = {
        "model": TINY_MODEL.name,
        "tokens": {"direct": d_tokens, "full": f_tokens},
        "rounds": args.rounds,
        "direct_tokens_per_s": round(d_tps, 1),
        "full_tokens_per_s": round(f_tps, 1),
        "throughput_ratio": round(f_tps / d_tps, 3),
        "round_ratios": ratios,
        "median_round_ratio": round(statistics.median(ratios), 3),
        "direct_ttft_ms": round(d_ttft * 1000, 2),
        "full_ttft_ms": round(f_ttft * 1000, 2),
        "ttft_overhead_ms": round((f_ttft - d_ttft) * 1000, 2),
        "sse_text_events_per_round": statistics.median(f[3] for f in full),
    }
    emit("stream_overhead", result, save=(args.tokens, args.rounds) == (DEFAULT_TOKENS, DEFAULT_ROUNDS))


if __name__ == "__main__":
    main()
