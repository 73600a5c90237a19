"""IEx sessions in docs (`iex> expr` followed by its result), as practice items.

A session is a run of `iex>` steps; `...>` lines continue an expression and the
lines after it, up to a blank line or the next prompt, are its expected result
(the same reading ExUnit's doctests use). Each step becomes one item that shows
the earlier steps of its session with their results, so bindings stay in view.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PROMPT = re.compile(r"^(\s*)iex(?:\(\d+\))?>\s?(.*)$")
_CONTINUE = re.compile(r"^\s*\.\.\.(?:\(\d+\))?>\s?(.*)$")


@dataclass(frozen=True)
class Step:
    expr: str
    result: str


def sessions(text: str) -> list[list[Step]]:
    out: list[list[Step]] = []
    current: list[Step] = []
    expr: list[str] | None = None
    result: list[str] = []

    def close_step() -> None:
        nonlocal expr, result
        if expr is not None:
            current.append(Step("\n".join(expr), "\n".join(result).strip()))
        expr, result = None, []

    def close_session() -> None:
        nonlocal current
        close_step()
        if current:
            out.append(current)
        current = []

    for line in text.split("\n"):
        m = _PROMPT.match(line)
        if m:
            close_step()
            expr = [m.group(2)]
            continue
        if expr is None:
            if not line.strip():
                close_session()
            continue
        c = _CONTINUE.match(line)
        if c and not result:
            expr.append(c.group(1))
        elif not line.strip() or line.strip().startswith("```"):
            close_session()
        else:
            result.append(line.strip())
    close_session()
    return out


def render(steps: list[Step]) -> str:
    lines: list[str] = []
    for s in steps:
        first, *rest = s.expr.split("\n")
        lines.append(f"iex> {first}")
        lines.extend(f"...> {r}" for r in rest)
        if s.result:
            lines.append(s.result)
    return "\n".join(lines)


def practice_items(session: list[Step]) -> list[tuple[str, str]]:
    """(shown session with the last result hidden, expected result) per step."""
    items = []
    for i, step in enumerate(session):
        if not step.result or not step.expr.strip():
            continue
        shown = render(session[:i] + [Step(step.expr, "")])
        items.append((shown, step.result))
    return items
