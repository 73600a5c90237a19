"""Stage 2 instruction pairs mined from Elixir code, as chat rows.

Each kind turns something the author already wrote into a question and its
answer, so no model is needed to make the data:
- doc_to_impl: a function's @doc -> the function;
- spec_to_impl: its @spec and name -> the function;
- moduledoc_to_module: a module's @moduledoc -> the module;
- function_to_test: a function -> the ExUnit `describe "name/arity"` block that
  tests it (or a whole module -> its test module when no describe matches);
- doctest_result: an `iex>` example in a doc -> the result the doc states;
- skeleton_to_module: the module with function bodies replaced by `# TODO` ->
  the module.
Loss applies to the assistant turn only (the trainer masks the rest).
"""

from __future__ import annotations

import random
import re
import textwrap
from typing import Any

from python_worker.dataset import elixir_ast, iex
from python_worker.dataset.config import Stage2Config
from python_worker.dataset.elixir_ast import Module, Parsed

_DESCRIBE_TITLE = re.compile(r"^\s*(?:[\w.]+\.)?([a-z_][\w]*[?!]?)(?:/(\d+))?\b")
MIN_DOC_CHARS = 20


def fenced(code: str) -> str:
    return f"```elixir\n{textwrap.dedent(code).strip(chr(10))}\n```"


def chat(system: str, user: str, assistant: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": user},
        {"role": "assistant", "content": assistant},
    ]


def mine(
    text: str,
    parsed: Parsed,
    config: Stage2Config,
    rng: random.Random,
    base: dict[str, Any],
    tested: tuple[str, Parsed] | None = None,
) -> list[dict[str, Any]]:
    """Pairs from one file. `tested` is (text, parse) of the module a test file tests."""
    kinds = set(config.pair_kinds)
    found: list[tuple[str, str, str]] = []
    mods = elixir_ast.modules(parsed)
    for mod in mods:
        found.extend(_module_pairs(text, mod, kinds))
    if "function_to_test" in kinds and tested is not None:
        found.extend(_test_pairs(text, mods, tested))
    found = [f for f in found if len(f[2]) <= config.max_answer_chars and len(f[1]) <= 2 * config.max_answer_chars]
    if len(found) > config.max_pairs_per_file:
        keep = sorted(rng.sample(range(len(found)), config.max_pairs_per_file))
        found = [found[i] for i in keep]
    return [
        {**base, "kind": kind, "messages": chat(config.system_prompt, user, answer)} for kind, user, answer in found
    ]


def _module_pairs(text: str, mod: Module, kinds: set[str]) -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    module_src = text[mod.start : mod.end]
    if "moduledoc_to_module" in kinds and mod.moduledoc and len(mod.moduledoc) >= 2 * MIN_DOC_CHARS:
        out.append(
            (
                "moduledoc_to_module",
                f"Write the Elixir module `{mod.name}` described below.\n\n{mod.moduledoc}",
                fenced(module_src),
            )
        )
    if "doctest_result" in kinds and mod.moduledoc:
        out.extend(_doctests(mod.moduledoc, f"the module `{mod.name}`"))
    for f in mod.functions:
        code = text[f.start : f.end]
        public = f.kind in ("def", "defmacro")
        if "doc_to_impl" in kinds and public and f.doc and len(f.doc) >= MIN_DOC_CHARS:
            out.append(
                (
                    "doc_to_impl",
                    (f"Write the Elixir function `{mod.name}.{f.signature}` documented as follows.\n\n{f.doc}"),
                    fenced(code),
                )
            )
        if "spec_to_impl" in kinds and f.specs:
            specs = "\n".join(textwrap.dedent(s) for s in f.specs)
            out.append(
                (
                    "spec_to_impl",
                    (
                        f"Implement `{f.signature}` in the Elixir module `{mod.name}` so that it "
                        f"satisfies this typespec:\n\n```elixir\n{specs}\n```"
                    ),
                    fenced(code),
                )
            )
        if "doctest_result" in kinds and f.doc:
            out.extend(_doctests(f.doc, f"`{mod.name}.{f.signature}`"))
    if "skeleton_to_module" in kinds:
        skeleton = _skeleton(text, mod)
        if skeleton is not None:
            out.append(
                (
                    "skeleton_to_module",
                    (
                        "Complete this Elixir module: replace every `# TODO` with the function "
                        f"body.\n\n{fenced(skeleton)}"
                    ),
                    fenced(module_src),
                )
            )
    return out


def _doctests(doc: str, where: str) -> list[tuple[str, str, str]]:
    out = []
    for session in iex.sessions(doc):
        for shown, result in iex.practice_items(session):
            out.append(
                (
                    "doctest_result",
                    (
                        f"What does the last expression of this IEx session return? "
                        f"(From the documentation of {where}.)\n\n```elixir\n{shown}\n```"
                    ),
                    f"```elixir\n{result}\n```",
                )
            )
    return out


def _skeleton(text: str, mod: Module) -> str | None:
    bodies = sorted(b for f in mod.functions for b in f.bodies)
    if len(bodies) < 2:
        return None
    parts: list[str] = []
    pos = mod.start
    for start, end in bodies:
        if start < pos:  # nested in an earlier body
            continue
        body = text[start:end]
        indent = body[: len(body) - len(body.lstrip(" \t"))]
        parts.append(text[pos:start])
        parts.append(f"{indent}# TODO\n")
        pos = end
    parts.append(text[pos : mod.end])
    return "".join(parts)


def _test_pairs(text: str, test_mods: list[Module], tested: tuple[str, Parsed]) -> list[tuple[str, str, str]]:
    target_text, target_parsed = tested
    targets = {m.name: m for m in elixir_ast.modules(target_parsed)}
    out: list[tuple[str, str, str]] = []
    for tm in test_mods:
        if not tm.uses_exunit or not tm.name.endswith("Test"):
            continue
        target = targets.get(tm.name[: -len("Test")])
        if target is None:
            continue
        matched = False
        for title, start, end in tm.describes:
            m = _DESCRIBE_TITLE.match(title)
            if not m:
                continue
            name, arity = m.group(1), m.group(2)
            funcs = [f for f in target.functions if f.name == name and (arity is None or f.arity == int(arity))]
            if len(funcs) != 1:
                continue
            f = funcs[0]
            matched = True
            out.append(
                (
                    "function_to_test",
                    (
                        f"Write ExUnit tests for `{target.name}.{f.signature}`:\n\n"
                        f"{fenced(target_text[f.start : f.end])}"
                    ),
                    fenced(text[start:end]),
                )
            )
        if not matched:
            out.append(
                (
                    "function_to_test",
                    (
                        f"Write an ExUnit test module for this module:\n\n"
                        f"{fenced(target_text[target.start : target.end])}"
                    ),
                    fenced(text[tm.start : tm.end]),
                )
            )
    return out
