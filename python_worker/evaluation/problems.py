"""Problem sets for execution-based evaluation.

A set is a name of a shipped file (`humaneval-elixir`, `mbpp-elixir`, both
under `evals/`) or any JSONL file in one of two formats:

* MultiPL-E: `name`, `prompt`, `tests`, `stop_tokens`;
* McEval: `task_id`, `prompt`, `canonical_solution`, `test`, `entry_point`
  (no stop tokens: a completion is used whole).

The program MultiPL-E runs is `prompt + completion + "\\n" + tests`. Problems
named in `evals/multipl-e-unsolvable.txt` (or in the `unsolvable` list given)
cannot be solved in Elixir and are left out; the caller reports how many.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from python_worker.jsonl import BadLine, read_objects

REPO = Path(__file__).resolve().parents[2]
EVALS = REPO / "evals"
SHIPPED = {
    "humaneval-elixir": EVALS / "multipl-e-humaneval-elixir.jsonl",
    "mbpp-elixir": EVALS / "multipl-e-mbpp-elixir.jsonl",
}
UNSOLVABLE = EVALS / "multipl-e-unsolvable.txt"


class ProblemError(ValueError):
    """A problem set or completions file that cannot be used; the message says where."""


@dataclass(frozen=True)
class Problem:
    name: str
    prompt: str
    tests: str
    stop_tokens: tuple[str, ...] = field(default_factory=tuple)

    def cut(self, completion: str) -> str:
        """The completion up to the first stop token (MultiPL-E's rule)."""
        end = len(completion)
        for stop in self.stop_tokens:
            at = completion.find(stop)
            if at != -1:
                end = min(end, at)
        return completion[:end]


@dataclass
class ProblemSet:
    path: Path
    problems: list[Problem]
    excluded: list[str]  # names left out as unsolvable


def resolve(name_or_file: str) -> Path:
    """A shipped set's file for its name, else the path given (which must exist)."""
    if name_or_file in SHIPPED:
        return SHIPPED[name_or_file]
    path = Path(name_or_file)
    if not path.is_file():
        raise ProblemError(
            f"problems: {name_or_file!r} is neither a shipped set ({', '.join(sorted(SHIPPED))}) nor a file"
        )
    return path


def read_unsolvable(path: Path = UNSOLVABLE) -> set[str]:
    if not path.is_file():
        return set()
    return {line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")}


def _problem(row: dict, where: str) -> Problem:
    if "tests" in row and "name" in row:  # MultiPL-E
        need = ("name", "prompt", "tests")
        stops = row.get("stop_tokens") or []
    elif "task_id" in row and "test" in row:  # McEval
        need = ("task_id", "prompt", "test")
        stops = []
    else:
        raise ProblemError(
            f"{where}: not a MultiPL-E row (name, prompt, tests, stop_tokens) "
            f"nor a McEval row (task_id, prompt, canonical_solution, test, entry_point); keys: {sorted(row)}"
        )
    for key in need:
        if not isinstance(row.get(key), str) or (key != "prompt" and not row[key]):
            raise ProblemError(f"{where}: {key} must be a non-empty string")
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise ProblemError(f"{where}: stop_tokens must be a list of non-empty strings")
    name = row.get("name") or row["task_id"]
    return Problem(name, row["prompt"], row.get("tests") or row["test"], tuple(stops))


def load(name_or_file: str, unsolvable: set[str] | None = None, limit: int = 0) -> ProblemSet:
    """The set's usable problems (file order), at most `limit` of them when > 0."""
    path = resolve(name_or_file)
    skip = read_unsolvable() if unsolvable is None else unsolvable
    problems: list[Problem] = []
    excluded: list[str] = []
    seen: set[str] = set()
    for n, row in read_objects(path, _bad_line(path, "a row must be a JSON object")):
        where = f"{path}:{n}"
        problem = _problem(row, where)
        if problem.name in seen:
            raise ProblemError(f"{where}: duplicate problem {problem.name!r}")
        seen.add(problem.name)
        if problem.name in skip:
            excluded.append(problem.name)
        elif not limit or len(problems) < limit:
            problems.append(problem)
    if not problems:
        raise ProblemError(f"{path}: no usable problems")
    return ProblemSet(path, problems, excluded)


def _bad_line(path: Path, not_an_object: str) -> BadLine:
    """The error for a line of `path` that is not JSON, or not an object."""

    def error(n: int, exc: json.JSONDecodeError | None) -> ProblemError:
        return ProblemError(f"{path}:{n}: not JSON ({exc.msg})" if exc else f"{path}:{n}: {not_an_object}")

    return error


def load_completions(path: str, problems: list[Problem]) -> dict[str, list[str]]:
    """Completions per problem name from JSONL `{"task_id" or "name", "completion"}`.

    Several rows for one problem are several samples, in file order. Rows for
    problems outside `problems` (e.g. past --limit) are ignored; a problem with
    no row is an error, so a typo cannot pass for a score of 0.
    """
    file = Path(path)
    if not file.is_file():
        raise ProblemError(f"completions: {path} does not exist")
    wanted = {p.name for p in problems}
    found: dict[str, list[str]] = {}
    needs = "a row needs a string task_id (or name) and a string completion"
    for n, row in read_objects(file, _bad_line(file, needs)):
        name = row.get("task_id") or row.get("name")
        if not isinstance(name, str) or not isinstance(row.get("completion"), str):
            raise ProblemError(f"{path}:{n}: {needs}")
        if name in wanted:
            found.setdefault(name, []).append(row["completion"])
    missing = [p.name for p in problems if p.name not in found]
    if missing:
        raise ProblemError(
            f"completions: {path} has no completion for {len(missing)} problem(s), e.g. {', '.join(missing[:3])}"
        )
    return found
