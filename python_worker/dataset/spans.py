"""Candidate FIM middles: syntax-aware spans of a file, by kind.

Elixir spans come from the tree-sitter parse:
- function_body: the body lines of a def/defp do-block, or the expression after `do:`;
- do_block: a whole `do ... end` of an if/case/with/fn/... (not def or defmodule);
- clause: one `pattern -> body` clause of case/cond/receive/fn/with;
- pipe_stage: the right side of a `|>`.
Every language also gets `line` (one line's code, without indentation or newline)
and `multi_line` (2-8 whole lines). Erlang clause bodies (after `->`, up to the
`;` or `.` that ends them) count as function_body, found with a light scan
rather than a parser. A random span is drawn by `pick` itself.
"""

from __future__ import annotations

import random
import re

from python_worker.dataset import elixir_ast
from python_worker.dataset.elixir_ast import Parsed

Span = tuple[int, int]

_CLAUSE_PARENTS = ("case", "cond", "receive", "with", "try")
_ERLANG_CLAUSE = re.compile(r"^[a-z][A-Za-z0-9_]*\(.*?\)\s*(?:when\s.*?)?->[ \t]*\n?", re.MULTILINE)
_NEWLINE = re.compile("\n")
MAX_MIDDLE_CHARS = 4000


def elixir_spans(p: Parsed) -> dict[str, list[Span]]:
    out: dict[str, list[Span]] = {
        "function_body": [],
        "do_block": [],
        "clause": [],
        "pipe_stage": [],
    }
    for node in p.walk():
        t = node.type
        if t == "call":
            name = elixir_ast.call_name(node)
            block = elixir_ast.child(node, "do_block")
            if name in elixir_ast.DEF_KINDS:
                if block is not None:
                    body = elixir_ast.do_block_body(p, block)
                    if body:
                        out["function_body"].append(body)
                else:
                    value = elixir_ast.keyword_do_value(node)
                    if value is not None:
                        out["function_body"].append(p.span(value))
            elif block is not None and name not in (
                "defmodule",
                "defprotocol",
                "defimpl",
                "describe",
            ):
                out["do_block"].append(p.span(block))
        elif t == "stab_clause":
            out["clause"].append(p.span(node))
        elif t == "binary_operator":
            op = next((c for c in node.children if not c.is_named), None)
            if op is not None and op.type == "|>" and node.named_children:
                out["pipe_stage"].append(p.span(node.named_children[-1]))
    return out


def erlang_spans(text: str) -> dict[str, list[Span]]:
    bodies: list[Span] = []
    for m in _ERLANG_CLAUSE.finditer(text):
        start = m.end()
        end = _erlang_clause_end(text, start)
        if end > start and text[start:end].strip():
            bodies.append((start, end))
    return {"function_body": bodies}


def _erlang_clause_end(text: str, start: int) -> int:
    """End of an Erlang clause body: a line ending in ';' or '.' (outside strings)."""
    pos = start
    while True:
        nl = text.find("\n", pos)
        line = text[pos:] if nl < 0 else text[pos:nl]
        code = line.split("%", 1)[0].rstrip()
        if code.endswith((";", ".")):
            return pos + len(code) - 1  # the terminator stays in the suffix
        if nl < 0 or nl - start > MAX_MIDDLE_CHARS:
            return start
        pos = nl + 1


def line_spans(text: str) -> dict[str, list[Span]]:
    lines: list[Span] = []
    pos = 0
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped:
            lead = len(line) - len(line.lstrip())
            lines.append((pos + lead, pos + lead + len(stripped)))
        pos += len(line) + 1
    return {"line": lines}


def multi_line_span(text: str, rng: random.Random) -> Span | None:
    starts = [0] + [m.end() for m in _NEWLINE.finditer(text) if m.end() < len(text)]
    if len(starts) < 3:
        return None
    k = rng.randint(2, min(8, len(starts) - 1))
    first = rng.randrange(0, len(starts) - k)
    end = starts[first + k] if first + k < len(starts) else len(text)
    return starts[first], end


def random_span(text: str, rng: random.Random) -> Span | None:
    if len(text) < 2:
        return None
    length = rng.randint(1, min(len(text) - 1, 512))
    start = rng.randrange(0, len(text) - length + 1)
    return start, start + length


def pick(
    text: str,
    spans: dict[str, list[Span]],
    weights: dict[str, float],
    random_rate: float,
    rng: random.Random,
) -> tuple[str, Span] | None:
    """A (kind, span) draw: random with random_rate, else a weighted syntax kind."""
    if rng.random() < random_rate:
        span = random_span(text, rng)
        return ("random", span) if span else None
    usable = {
        k: [s for s in v if 0 < s[1] - s[0] <= MAX_MIDDLE_CHARS] for k, v in spans.items() if weights.get(k, 0.0) > 0
    }
    kinds = [k for k, v in usable.items() if v]
    if weights.get("multi_line", 0.0) > 0:
        kinds.append("multi_line")
    kinds = sorted(set(kinds))
    if kinds:
        kind = rng.choices(kinds, weights=[weights[k] for k in kinds])[0]
        if kind == "multi_line" and not usable.get("multi_line"):
            span = multi_line_span(text, rng)
        else:
            span = rng.choice(usable[kind])
        if span:
            return kind, span
    span = random_span(text, rng)
    return ("random", span) if span else None
