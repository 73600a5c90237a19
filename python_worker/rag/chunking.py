"""Markdown and Elixir files as memory chunks.

* Markdown is cut at headings (outside code fences); a chunk carries its
  heading path ("Guide > Setup > Linux") on its first line and its source is
  `PATH#heading-slug`.
* `.ex`/`.exs` files are cut at the top-level definitions of their modules:
  a `def`/`defp`/`defmacro`/... together with the `@doc`/`@spec`/`@impl`
  lines above it and the further clauses of the same function, so a chunk is
  one documented function. What comes before the first definition (the
  `defmodule` line, `@moduledoc`, `use`/`alias`) is a chunk of its own.
  Source: `PATH:LINE` of the chunk's first line.

Chunks overlap a little: each repeats the last OVERLAP_LINES lines of the one
before it, and a section longer than MAX_CHARS is cut into windows that
overlap the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

MAX_CHARS = 1500
OVERLAP_LINES = 2

MARKDOWN_SUFFIXES = (".md", ".markdown")
ELIXIR_SUFFIXES = (".ex", ".exs")

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_DEFINITION = re.compile(
    r"^(?P<indent>\s*)(?P<kw>defmodule|defprotocol|defimpl|def|defp|defmacro|defmacrop|defguard|defguardp|"
    r"defdelegate|defstruct|defexception|defoverridable)\b\s*(?P<name>[a-zA-Z_][\w?!.]*)?"
)
_ATTRIBUTE = re.compile(r"^(?P<indent>\s*)@(?P<name>doc|spec|impl|deprecated|typedoc|type|typep|opaque|callback)\b")


_MODULE_KWS = frozenset({"defmodule", "defprotocol", "defimpl"})


@dataclass(frozen=True)
class Chunk:
    text: str
    source: str
    kind: str  # "markdown" or "code"


def chunk_file(path: Path) -> list[Chunk]:
    """The chunks of one Markdown or Elixir file (by suffix); other files have none."""
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix in MARKDOWN_SUFFIXES:
        return chunk_markdown(text, str(path))
    if path.suffix in ELIXIR_SUFFIXES:
        return chunk_elixir(text, str(path))
    return []


# -- Markdown ------------------------------------------------------------------


def slug(heading: str) -> str:
    return re.sub(r"[^\w]+", "-", heading.lower()).strip("-")


def chunk_markdown(text: str, path: str) -> list[Chunk]:
    lines = text.splitlines()
    sections: list[tuple[list[str], int, int]] = []  # (heading path, first line, end line), 0-based
    trail: list[tuple[int, str]] = []
    start, fenced = 0, False
    current: list[str] = []
    for index, line in enumerate(lines):
        if _FENCE.match(line):
            fenced = not fenced
        match = None if fenced else _HEADING.match(line)
        if match:
            if index > start:
                sections.append((current, start, index))
            level, title = len(match.group(1)), match.group(2)
            trail = [(lv, t) for lv, t in trail if lv < level] + [(level, title)]
            current = [t for _, t in trail]
            start = index
    if len(lines) > start:
        sections.append((current, start, len(lines)))
    chunks = []
    previous: list[str] = []
    for heading, first, end in sections:
        body = lines[first:end]
        if not "\n".join(body).strip():
            continue
        anchor = f"{path}#{slug(heading[-1])}" if heading else f"{path}:{first + 1}"
        prefix = " > ".join(heading)
        for number, window in enumerate(_windows(body)):
            # The heading path first: a chunk deep in a section still says what it is about.
            lead = [prefix] if len(heading) > 1 or (heading and number > 0) else []
            # The windows of one section already overlap; the first repeats the previous section's end.
            overlap = previous if number == 0 else []
            chunks.append(Chunk("\n".join(lead + overlap + window).strip(), anchor, "markdown"))
            previous = _tail(window)
    return chunks


# -- Elixir --------------------------------------------------------------------


def chunk_elixir(text: str, path: str) -> list[Chunk]:
    lines = text.splitlines()
    starts = _definition_starts(lines)
    if not starts or starts[0] != 0:
        starts = [0, *starts]
    chunks = []
    previous: list[str] = []
    previous_window: list[str] = []
    for first, end in zip(starts, [*starts[1:], len(lines)], strict=True):
        body = lines[first:end]
        while body and not body[-1].strip():
            body.pop()
        if not "\n".join(body).strip():
            continue
        line = first + 1
        for number, window in enumerate(_windows(body)):
            overlap = previous if number == 0 else []
            if number > 0:
                line += len(previous_window) - min(OVERLAP_LINES, len(previous_window))
            chunks.append(Chunk("\n".join(overlap + window), f"{path}:{line}", "code"))
            previous, previous_window = _tail(window), window
    return chunks


def _definition_starts(lines: list[str]) -> list[int]:
    """0-based lines where a chunk begins: a definition (with its attributes above), at the module-body level."""
    candidates: list[tuple[int, int, str, str]] = []  # (line, indent, kind, name)
    in_heredoc = False
    for index, line in enumerate(lines):
        quotes = line.count('"""') + line.count("'''")
        if in_heredoc:
            in_heredoc = quotes % 2 == 0
            continue
        if quotes % 2 == 1:
            in_heredoc = True
        match = _DEFINITION.match(line) or _ATTRIBUTE.match(line)
        if match:
            kw = match.groupdict().get("kw") or "@" + match.group("name")
            candidates.append((index, len(match.group("indent")), kw, match.groupdict().get("name") or ""))
    functions = [c for c in candidates if not c[2].startswith("@") and c[2] not in _MODULE_KWS]
    if not functions:
        return []
    # The module body's level: the shallowest function-like definition.
    level = min(indent for _, indent, _, _ in functions)
    starts: list[int] = []
    attributes_pending = False
    last_function = ""
    for index, indent, kind, name in candidates:
        if indent != level:
            continue
        if kind.startswith("@"):
            if kind in ("@doc", "@spec", "@impl", "@deprecated", "@typedoc", "@callback") and not attributes_pending:
                starts.append(index)
                attributes_pending = True
                last_function = ""
            continue
        same_function = kind in ("def", "defp", "defmacro", "defmacrop") and name == last_function
        if not attributes_pending and not same_function:
            starts.append(index)
        attributes_pending = False
        last_function = name
    return sorted(set(starts))


# -- shared ----------------------------------------------------------------------


def _windows(lines: list[str]) -> list[list[str]]:
    """Lines cut into windows of at most MAX_CHARS (a longer single line is one window), overlapping by OVERLAP_LINES."""
    windows: list[list[str]] = []
    current: list[str] = []
    size = 0
    for line in lines:
        if current and size + len(line) + 1 > MAX_CHARS:
            windows.append(current)
            current = current[-OVERLAP_LINES:] if len(current) > OVERLAP_LINES else []
            size = sum(len(x) + 1 for x in current)
        current.append(line)
        size += len(line) + 1
    if current:
        windows.append(current)
    return windows


def _tail(window: list[str]) -> list[str]:
    return [line for line in window[-OVERLAP_LINES:] if line.strip()]
