"""Sandboxed Elixir program throughput: programs/s/core on the reference solutions.

    .venv/bin/python bench/sandbox_throughput.py [--rounds 3] [--workers 0] [--no-save]

Three ways of running, each --rounds times over the reference solutions in
evals/reference/humaneval-elixir.jsonl (six HumanEval problems, all passing),
`--workers` programs at once (default: the CPU cores):

* baseline: a bare `elixir -e ''` start, the floor of any one-BEAM-per-program
  harness;
* bare: the same test programs as `elixir main.exs` with no sandbox at all;
* sandbox: through python_worker.evaluation (bubblewrap, rlimits, own uid,
  nonce-checked ExUnit result), every sample must pass.

Reported per mode: programs/s on the wall clock and programs/s/core (divided
by the cores in use); for the two unsandboxed modes also CPU seconds per
program (user + sys of the child processes, from getrusage), whose inverse is
what one core could sustain whatever else the machine is doing. (A sandboxed
program is reaped inside bubblewrap's PID namespace, so its CPU time never
reaches getrusage here.) `ratio_vs_baseline` is the sandbox's wall-clock
programs/s over the bare start's, `ratio_vs_bare_program` over the same
programs run without a sandbox; `load_average` is the 1-minute load when the
bench ended (the machine may be shared). Ends with
emit("sandbox_throughput", ...): one JSON line, saved to
bench/results/sandbox_throughput.json (not with --no-save).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results import emit
from python_worker.evaluation import execute, problems
from python_worker.evaluation.sandbox import Limits, Sandbox

REFERENCE = problems.REPO / "evals" / "reference" / "humaneval-elixir.jsonl"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(label: str, n: int, workers: int, one) -> dict:
    cpu0, t0 = _children_cpu(), time.monotonic()
    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(one, range(n)))
    wall, cpu = time.monotonic() - t0, _children_cpu() - cpu0
    return {
        "mode": label,
        "programs": n,
        "wall_s": round(wall, 2),
        "programs_per_s": round(n / wall, 3),
        "programs_per_s_per_core": round(n / wall / workers, 3),
        "cpu_s_per_program": round(cpu / n, 3),
        "cpu_bound_programs_per_s_per_core": round(n / cpu, 3) if cpu else None,
        "results": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    workers = args.workers or os.cpu_count() or 1
    elixir = shutil.which("elixir")
    if elixir is None:
        sys.exit("elixir is not on PATH")

    by_name = {p.name: p for p in problems.load("humaneval-elixir").problems}
    refs = [json.loads(line) for line in REFERENCE.read_text().splitlines()]
    work = [(by_name[r["name"]], by_name[r["name"]].cut(r["completion"])) for r in refs] * args.rounds
    n = len(work)

    def bare_start(_: int) -> int:
        return subprocess.run([elixir, "-e", ""], capture_output=True, check=False).returncode

    tmp = Path(tempfile.mkdtemp(prefix="bench-sandbox-"))

    def bare_program(i: int) -> int:
        problem, completion = work[i]
        path = tmp / f"p{i}.exs"
        path.write_text(execute.program(problem, completion))
        return subprocess.run(
            [elixir, str(path)], input=b"nonce\n", capture_output=True, check=False, cwd=tmp
        ).returncode

    sandbox = Sandbox(Limits(), slots=workers)

    def sandboxed(i: int) -> str:
        problem, completion = work[i]
        return execute.run_one(sandbox, problem, completion).status

    try:
        modes = [_timed("baseline_bare_start", n, workers, bare_start)]
        modes.append(_timed("bare_program", n, workers, bare_program))
        modes.append(_timed("sandbox", n, workers, sandboxed))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    statuses = modes[2].pop("results")
    if set(statuses) != {execute.PASSED}:
        sys.exit(f"a reference solution did not pass in the sandbox: {statuses}")
    for mode in modes:
        mode.pop("results", None)
    base, bare, box = modes
    box["cpu_s_per_program"] = box["cpu_bound_programs_per_s_per_core"] = None
    emit(
        "sandbox_throughput",
        {
            "programs": n,
            "workers": workers,
            "modes": modes,
            "sandbox_programs_per_s_per_core": box["programs_per_s_per_core"],
            "ratio_vs_baseline": round(box["programs_per_s"] / base["programs_per_s"], 3),
            "ratio_vs_bare_program": round(box["programs_per_s"] / bare["programs_per_s"], 3),
            "load_average": round(os.getloadavg()[0], 2),
            "sandbox": sandbox.report()["applied"],
            "unavailable": sandbox.report()["unavailable"],
        },
        save=not args.no_save,
    )


if __name__ == "__main__":
    main()
