"""Problem sets: the shipped names, MultiPL-E and McEval rows, unsolvable
problems, stop tokens, completions files, and errors that name the line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from python_worker.evaluation import execute, problems
from python_worker.evaluation.sandbox import Sandbox

MCEVAL_ROW = {
    "task_id": "Elixir/1",
    "prompt": "defmodule Adder do\n  def add(a, b) do\n",
    "canonical_solution": "    a + b\n  end\nend\n",
    "test": "ExUnit.start()\ndefmodule AdderTest do\n  use ExUnit.Case\n"
    '  test "add" do\n    assert Adder.add(1, 2) == 3\n  end\nend\n',
    "entry_point": "add",
}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_shipped_sets_leave_out_the_unsolvable_problems() -> None:
    humaneval = problems.load("humaneval-elixir")
    assert len(humaneval.problems) == 160
    assert humaneval.excluded == ["HumanEval_153_Strongest_Extension"]
    mbpp = problems.load("mbpp-elixir")
    assert (len(mbpp.problems), len(mbpp.excluded)) == (387, 10)
    limited = problems.load("humaneval-elixir", limit=5)
    assert [p.name for p in limited.problems] == [p.name for p in humaneval.problems[:5]]


def test_completions_are_cut_at_the_first_stop_token() -> None:
    problem = problems.load("humaneval-elixir", limit=1).problems[0]
    assert "\n\n" in problem.stop_tokens
    assert problem.cut("x + 1\n  end\nend\n\ndefmodule Extra do") == "x + 1\n  end\nend"
    assert problem.cut("a\n# comment\n\nb") == "a"


def test_a_mceval_file_runs_with_its_canonical_solution(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "mceval.jsonl", [MCEVAL_ROW])
    loaded = problems.load(str(path), unsolvable=set())
    [problem] = loaded.problems
    assert problem.name == "Elixir/1" and problem.stop_tokens == ()
    sample = execute.run_one(Sandbox(), problem, MCEVAL_ROW["canonical_solution"])
    assert sample.status == execute.PASSED, sample.stderr_tail


def test_bad_files_name_the_line(tmp_path: Path) -> None:
    cases = [
        ([{"name": "a", "prompt": "p", "tests": "t"}, "not json"], ":2: not JSON"),
        ([{"foo": 1}], ":1: not a MultiPL-E row"),
        ([{"name": "a", "prompt": "p", "tests": ""}], ":1: tests must be a non-empty string"),
        ([{"name": "a", "prompt": "p", "tests": "t", "stop_tokens": [""]}], ":1: stop_tokens must be"),
        ([{"name": "a", "prompt": "p", "tests": "t"}] * 2, ":2: duplicate problem 'a'"),
    ]
    for rows, message in cases:
        path = tmp_path / "set.jsonl"
        path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
        with pytest.raises(problems.ProblemError) as err:
            problems.load(str(path))
        assert f"{path}{message}" in str(err.value)
    with pytest.raises(problems.ProblemError, match="neither a shipped set"):
        problems.load("no-such-set")


def test_completions_files(tmp_path: Path) -> None:
    set_ = problems.load("humaneval-elixir", limit=2).problems
    a, b = (p.name for p in set_)
    path = write_jsonl(
        tmp_path / "c.jsonl",
        [{"task_id": a, "completion": "1"}, {"name": b, "completion": "2"},
         {"name": a, "completion": "3"}, {"name": "elsewhere", "completion": "4"}],
    )  # fmt: skip
    assert problems.load_completions(str(path), set_) == {a: ["1", "3"], b: ["2"]}
    write_jsonl(path, [{"task_id": a, "completion": 5}])
    with pytest.raises(problems.ProblemError, match=r"c.jsonl:1: a row needs a string task_id"):
        problems.load_completions(str(path), set_)
