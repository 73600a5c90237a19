"""The execution phase of an Evaluate job: run every sample, then summarise.

`results.jsonl` holds one row per sample; `summary.json` the numbers
(pass_at_1, pass_at_10 when every problem has >= 10 samples, compile_rate,
counts per status, problems, samples, excluded, the sandbox's applied and
unavailable limits). Both are written to a temporary file and renamed.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from python_worker.dataset.output import write_atomic
from python_worker.evaluation import execute
from python_worker.evaluation.pass_at_k import mean_pass_at_k
from python_worker.evaluation.problems import Problem, ProblemSet
from python_worker.evaluation.sandbox import Sandbox


def summarize(problem_set: ProblemSet, samples: list[execute.Sample], sandbox: Sandbox) -> dict:
    per_problem: dict[str, list[execute.Sample]] = {p.name: [] for p in problem_set.problems}
    for sample in samples:
        per_problem[sample.problem].append(sample)
    counts = [(len(s), sum(x.status == execute.PASSED for x in s)) for s in per_problem.values()]
    statuses = Counter(s.status for s in samples)
    summary: dict = {
        "problem_set": str(problem_set.path),
        "pass_at_1": mean_pass_at_k(counts, 1),
        "compile_rate": sum(s.compiled for s in samples) / len(samples) if samples else None,
        "problems": len(per_problem),
        "samples": len(samples),
        "samples_per_problem": min((n for n, _ in counts), default=0),
        "excluded": len(problem_set.excluded),
        "excluded_problems": problem_set.excluded,
        "statuses": {status: statuses.get(status, 0) for status in execute.STATUSES},
        "sandbox": sandbox.report(),
    }
    pass_10 = mean_pass_at_k(counts, 10)
    if pass_10 is not None:
        summary["pass_at_10"] = pass_10
    return summary


def run_samples(
    sandbox: Sandbox,
    completions: dict[str, list[str]],
    problems: list[Problem],
    workers: int,
    on_sample: Callable[[execute.Sample], None],
    cancel: threading.Event,
) -> list[execute.Sample]:
    work = [(p, i, c) for p in problems for i, c in enumerate(completions[p.name])]
    return execute.run_all(sandbox, work, workers, on_sample, cancel)


def write_results(path: Path, samples: list[execute.Sample]) -> None:
    """results.jsonl, one row per sample, written to a temporary file and renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, "".join(json.dumps(s.row(), ensure_ascii=False) + "\n" for s in samples).encode())
