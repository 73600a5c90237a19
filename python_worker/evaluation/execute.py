"""Score completions by running each problem's tests in the sandbox.

What counts as a pass: the test file's own ExUnit run reports at least one test
and 0 failures, AND the process exits 0. MultiPL-E only looks at the exit code,
so a completion calling `System.halt(0)` would pass there; here it fails.

The program is MultiPL-E's `prompt + completion + "\\n" + tests` with three
lines of ours around it:

* a prelude (first line) reads a random nonce from stdin into a top-level
  variable, before any problem code runs (it is in no file, no environment
  variable and no argument, so the program cannot print it by accident);
* after the completion, `NONCE compiled` is printed: the problem's module
  parsed and compiled (the compile rate counts these); then ExUnit starts
  without autorun, so the tests' own `ExUnit.start()` adds no second run at
  exit (and test files that never start ExUnit work too);
* after the tests, `ExUnit.run()` runs them and `NONCE result TOTAL FAILURES`
  is printed, then the VM halts with 0 only when there were no failures.

Statuses: passed, failed, timeout, compile_error, killed (by a limit: memory,
output, processes, a signal).
"""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass

from python_worker.evaluation.problems import Problem
from python_worker.evaluation.sandbox import RunResult, Sandbox

PASSED, FAILED, TIMEOUT, COMPILE_ERROR, KILLED = "passed", "failed", "timeout", "compile_error", "killed"
STATUSES = (PASSED, FAILED, TIMEOUT, COMPILE_ERROR, KILLED)

_VAR = "devstral_eval_nonce"
_PRELUDE = f'{_VAR} = String.trim(IO.read(:stdio, :line) || "")\n'
_COMPILED = f'IO.puts("\\n#{{{_VAR}}} compiled")\nExUnit.start(autorun: false)\n'
_TRAILER = (
    f"\n{_VAR}_result = ExUnit.run()\n"
    f'IO.puts("\\n#{{{_VAR}}} result #{{{_VAR}_result.total}} #{{{_VAR}_result.failures}}")\n'
    f"System.halt(if {_VAR}_result.failures == 0, do: 0, else: 1)\n"
)
_OUT_OF_MEMORY = re.compile(r"Cannot (re)?allocate \d+ bytes|std::bad_alloc|out of memory|enomem", re.IGNORECASE)


@dataclass
class Sample:
    problem: str
    sample: int
    completion: str
    status: str
    compiled: bool
    exit_code: int | None
    duration_s: float
    tests: int | None
    failures: int | None
    stdout_tail: str
    stderr_tail: str
    killed: str = ""

    def row(self) -> dict:
        return asdict(self)


def program(problem: Problem, completion: str) -> str:
    """The file the sandbox runs for one completion (already cut at stop tokens)."""
    return _PRELUDE + problem.prompt + completion + "\n" + _COMPILED + problem.tests + _TRAILER


def classify(run: RunResult, nonce: str) -> tuple[str, bool, int | None, int | None]:
    """(status, compiled, tests, failures) of one run, from lines carrying the nonce."""
    compiled = re.search(rf"^{nonce} compiled$", run.stdout, re.MULTILINE) is not None
    result = re.search(rf"^{nonce} result (\d+) (\d+)$", run.stdout, re.MULTILINE)
    tests, failures = (int(result[1]), int(result[2])) if result else (None, None)
    if run.timed_out:
        return TIMEOUT, compiled, tests, failures
    if run.killed or (result is None and _OUT_OF_MEMORY.search(run.stderr)):
        return KILLED, compiled, tests, failures
    if tests is not None and tests >= 1 and failures == 0 and run.exit_code == 0:
        return PASSED, compiled, tests, failures
    if not compiled:
        return COMPILE_ERROR, compiled, tests, failures
    return FAILED, compiled, tests, failures


def run_one(sandbox: Sandbox, problem: Problem, completion: str, index: int = 0) -> Sample:
    cut = problem.cut(completion)
    nonce = secrets.token_hex(16)
    run = sandbox.run(program(problem, cut), stdin=nonce + "\n")
    status, compiled, tests, failures = classify(run, nonce)
    return Sample(
        problem.name, index, cut, status, compiled, run.exit_code, round(run.duration_s, 3),
        tests, failures, run.stdout, run.stderr, run.killed,
    )  # fmt: skip


def run_all(
    sandbox: Sandbox,
    work: list[tuple[Problem, int, str]],
    workers: int,
    on_sample: Callable[[Sample], None] | None = None,
    cancel: threading.Event | None = None,
) -> list[Sample]:
    """Run every (problem, sample index, completion), `workers` at a time.

    Results come back in `work` order; `on_sample` is called as each finishes
    (from this thread). When `cancel` is set no new run starts; the running
    ones finish (each is bounded by the wall-clock limit).
    """
    results: dict[int, Sample] = {}
    pending: dict[Future, int] = {}
    queue = list(enumerate(work))
    queue.reverse()
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="sandbox") as pool:
        while queue or pending:
            while queue and len(pending) < max(1, workers) and not (cancel and cancel.is_set()):
                i, (problem, index, completion) = queue.pop()
                pending[pool.submit(run_one, sandbox, problem, completion, index)] = i
            if not pending:
                break
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                i = pending.pop(fut)
                results[i] = fut.result()
                if on_sample is not None:
                    on_sample(results[i])
    return [results[i] for i in sorted(results)]
