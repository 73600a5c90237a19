"""The sandbox and the pass rule: reference solutions pass, corrupted ones and
hostile programs do not, and every hostile program is contained.

All programs of a test run in parallel (two at a time) through the real
sandbox and the real `elixir`; each is bounded by the 5 s wall clock.
"""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import pytest

from python_worker.evaluation import execute, problems
from python_worker.evaluation import sandbox as sandbox_mod
from python_worker.evaluation.problems import Problem
from python_worker.evaluation.sandbox import SANDBOX_UIDS, Limits, Sandbox

REFERENCE = problems.REPO / "evals" / "reference" / "humaneval-elixir.jsonl"
SECRET = "s3cret-devstral-eval-value"

# A problem of our own: f() must return 1.
PROBE = Problem(
    "probe",
    "defmodule Probe do\n  def f do\n    ",
    "ExUnit.start()\ndefmodule ProbeTest do\n  use ExUnit.Case, async: true\n"
    "  test 'f' do\n    assert 1 == Probe.f()\n  end\nend\n",
    ("\ndefmodule", "\n#", "\n\n"),
)
END = "\n  end\nend\n"


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return Sandbox(Limits(), slots=2)


def run(sandbox: Sandbox, completions: list[str], problem: Problem = PROBE) -> list[execute.Sample]:
    return execute.run_all(sandbox, [(problem, i, c) for i, c in enumerate(completions)], workers=2)


def test_reference_solutions_pass_and_corrupted_ones_fail(sandbox: Sandbox) -> None:
    rows = [json.loads(line) for line in REFERENCE.read_text().splitlines()]
    assert len(rows) >= 5
    by_name = {p.name: p for p in problems.load("humaneval-elixir").problems}
    work = []
    for row in rows:
        problem = by_name[row["name"]]
        work.append((problem, 0, row["completion"]))
        work.append((problem, 1, "nil" + END))  # wrong answer
    # One broken completion of each compile kind.
    work.append((by_name[rows[0]["name"]], 2, "Enum.map(numbers, fn x -> x end" + END))  # syntax
    work.append((by_name[rows[0]["name"]], 3, "no_such_function(numbers)" + END))  # undefined
    results = execute.run_all(sandbox, work, workers=2)
    for sample in results:
        want = {0: execute.PASSED, 1: execute.FAILED, 2: execute.COMPILE_ERROR, 3: execute.COMPILE_ERROR}
        assert sample.status == want[sample.sample], (sample.problem, sample.sample, sample.stderr_tail)
        if sample.sample == 0:
            assert sample.tests == 1 and sample.failures == 0 and sample.exit_code == 0 and sample.compiled
    assert {s.compiled for s in results if s.sample == 1} == {True}


def test_a_fake_summary_and_halt_0_is_not_a_pass(sandbox: Sandbox) -> None:
    results = run(
        sandbox,
        [
            'IO.puts("1 test, 0 failures")\n    System.halt(0)' + END,  # when the test calls f
            "1\n  end\n  System.halt(0)\nend\n",  # while the module compiles
            "1" + END,  # control: a correct answer
        ],
    )
    assert [s.exit_code for s in results[:2]] == [0, 0]
    assert [s.status for s in results] == [execute.FAILED, execute.COMPILE_ERROR, execute.PASSED]


def test_hostile_programs_are_contained(sandbox: Sandbox, tmp_path: Path, monkeypatch) -> None:
    canary = tmp_path / "canary.txt"
    canary.write_text("untouched")
    monkeypatch.setenv("DEVSTRAL_EVAL_API_TOKEN", SECRET)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    hostile = {
        "infinite loop": "Stream.repeatedly(fn -> 1 end) |> Enum.reduce(0, &(&1 + &2))",
        "a million processes": "for _ <- 1..1_000_000, do: spawn(fn -> Process.sleep(:infinity) end)\n    1",
        "OS fork bomb": 'for _ <- 1..500, do: Port.open({:spawn, "sleep 30"}, [])\n    1',
        "unbounded allocation": 'Enum.reduce(1..64, "x", fn _, acc -> acc <> acc end)\n    1',
        "write outside": f'File.write!("{canary}", "pwned")\n    File.write!("/usr/pwned", "x")\n    1',
        "tcp connect": f'{{:ok, s}} = :gen_tcp.connect({{127, 0, 0, 1}}, {port}, [])\n    :ok = :gen_tcp.send(s, "hi")\n    1',
        "100 MB of output": 'IO.write(String.duplicate("x", 100_000_000))\n    1',
        "secret env": 'IO.inspect(System.get_env())\n    if System.get_env("DEVSTRAL_EVAL_API_TOKEN"), do: 1, else: 0',
    }
    results = run(sandbox, [body + END for body in hostile.values()])
    by_name = dict(zip(hostile, results, strict=True))
    for name, sample in by_name.items():
        assert sample.status != execute.PASSED, (name, sample)
        assert sample.duration_s < Limits().timeout_s + 3, (name, sample.duration_s)
    assert by_name["infinite loop"].status == execute.TIMEOUT
    assert by_name["unbounded allocation"].status == execute.KILLED
    assert by_name["100 MB of output"].status == execute.KILLED
    assert by_name["100 MB of output"].killed == "output limit"
    assert len(by_name["100 MB of output"].stdout_tail) <= Limits().tail_bytes
    assert by_name["OS fork bomb"].status in (execute.FAILED, execute.KILLED)
    assert by_name["a million processes"].status in (execute.FAILED, execute.KILLED, execute.TIMEOUT)
    assert canary.read_text() == "untouched"
    assert not Path("/usr/pwned").exists()
    with pytest.raises(BlockingIOError):
        listener.accept()
    listener.close()
    secret = by_name["secret env"]
    assert secret.status == execute.FAILED and SECRET not in secret.stdout_tail
    assert "HOME" in secret.stdout_tail  # the env was really printed
    # Nothing is left running under a sandbox uid.
    for uid in SANDBOX_UIDS[:4]:
        assert [pid for pid in sandbox_mod._pids_of(uid) if not sandbox_mod._zombie(pid)] == []


def test_runs_go_in_parallel_and_cancel_stops_new_ones(sandbox: Sandbox) -> None:
    cancel = threading.Event()
    seen: list[execute.Sample] = []

    def on_sample(sample: execute.Sample) -> None:
        seen.append(sample)
        cancel.set()

    work = [(PROBE, i, "1" + END) for i in range(6)]
    results = execute.run_all(sandbox, work, workers=2, on_sample=on_sample, cancel=cancel)
    assert 1 <= len(results) <= 2  # the two started before the cancel; none after
    assert all(s.status == execute.PASSED for s in results)


def test_report_lists_applied_and_unavailable_limits(sandbox: Sandbox) -> None:
    report = sandbox.report()
    assert any("wall clock" in line for line in report["applied"])
    assert any("RLIMIT_AS" in line for line in report["applied"])
    network = [line for line in report["applied"] + report["unavailable"] if "network" in line]
    assert network, "the network limit is either applied or reported unavailable"
    assert report["limits"]["timeout_s"] == 5.0


def test_uid_leases_are_never_shared() -> None:
    first, second = sandbox_mod._UidLease(), sandbox_mod._UidLease()
    try:
        a, b = first.acquire(), second.acquire()
        assert a != b and {a, b} <= set(SANDBOX_UIDS)
        first.release()
        third = sandbox_mod._UidLease()
        assert third.acquire() == a  # freed, so the lowest free uid again
        third.release()
    finally:
        first.release()
        second.release()


def test_limits_the_beam_cannot_start_under_fail_loudly() -> None:
    with pytest.raises(RuntimeError, match="elixir cannot start under the sandbox's limits"):
        Sandbox(Limits(memory_mb=64))
