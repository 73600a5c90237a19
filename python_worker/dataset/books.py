"""Stage 3: book-style rows from Markdown guides and documentation.

A chapter (one Markdown file) splits into sections at its headings. Each
section gives:
- explanation: "Explain <section> (from <chapter>)" -> the section's text;
- code_qa: the paragraph before a code block -> the code block;
- practice: every `iex>` step -> its result (iex.py), and in sections titled
  Exercises/Practice, each list item followed by a code block -> that code.
Rows keep the order they have in the book; the builder numbers them per source
(`curriculum_index`) in chapter order, so training can follow the sequence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from python_worker.dataset import iex
from python_worker.dataset.config import Stage3Config
from python_worker.dataset.mining import chat

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")
_EXERCISE = re.compile(r"(?i)\b(exercises?|practice|try it|challenges?)\b")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+(.*)$")
CODE_LANGS = {"elixir", "ex", "exs", "iex", "erlang", "erl", ""}


@dataclass
class Block:
    kind: str  # "text" or "code"
    text: str
    lang: str = ""


@dataclass
class Section:
    heading: str
    level: int
    blocks: list[Block] = field(default_factory=list)

    def prose(self) -> str:
        return "\n\n".join(b.text for b in self.blocks if b.kind == "text").strip()

    def markdown(self) -> str:
        parts = []
        for b in self.blocks:
            parts.append(b.text if b.kind == "text" else f"```{b.lang}\n{b.text}\n```")
        return "\n\n".join(p for p in parts if p.strip()).strip()


def parse(text: str, fallback_title: str) -> tuple[str, list[Section]]:
    """(chapter title, sections) of a Markdown document; code fences are respected."""
    sections: list[Section] = [Section(heading="", level=0)]
    para: list[str] = []
    lines = text.split("\n")
    i = 0

    def flush() -> None:
        if para and "\n".join(para).strip():
            sections[-1].blocks.append(Block("text", "\n".join(para).strip()))
        para.clear()

    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line)
        if fence:
            flush()
            marker, lang = fence.group(2), fence.group(3).lower()
            body: list[str] = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith(marker):
                body.append(lines[i])
                i += 1
            indent = len(fence.group(1))
            code = "\n".join(b[indent:] if b[:indent].isspace() else b for b in body)
            sections[-1].blocks.append(Block("code", code.strip("\n"), lang))
            i += 1
            continue
        heading = _HEADING.match(line)
        if heading:
            flush()
            sections.append(Section(heading=heading.group(2).strip(), level=len(heading.group(1))))
        elif not line.strip():
            flush()
        else:
            para.append(line)
        i += 1
    flush()
    title = next((s.heading for s in sections if s.level == 1), fallback_title)
    return title, [s for s in sections if s.blocks]


def rows(text: str, path: str, config: Stage3Config, base: dict[str, Any]) -> list[dict[str, Any]]:
    title, sections = parse(text, PurePosixPath(path).stem.replace("_", " ").replace("-", " "))
    out: list[dict[str, Any]] = []

    def add(kind: str, section: Section, user: str, answer: str) -> None:
        if not answer.strip() or len(answer) > config.max_answer_chars:
            return
        out.append(
            {
                **base,
                "kind": kind,
                "chapter": title,
                "section": section.heading or title,
                "messages": chat(config.system_prompt, user, answer),
            }
        )

    for section in sections:
        where = f"“{section.heading}” in “{title}”" if section.heading else f"“{title}”"
        if len(section.prose()) >= config.min_section_chars:
            add("explanation", section, f"Explain {where}.", section.markdown())
        previous_text = ""
        exercise = bool(_EXERCISE.search(section.heading))
        for block in section.blocks:
            if block.kind == "text":
                previous_text = block.text
                continue
            is_code = block.lang in CODE_LANGS
            sessions = iex.sessions(block.text) if is_code else []
            if sessions:
                for session in sessions:
                    for shown, result in iex.practice_items(session):
                        add(
                            "practice",
                            section,
                            "What does the last expression of this IEx session return? "
                            f"(From {where}.)\n\n```elixir\n{shown}\n```",
                            f"```elixir\n{result}\n```",
                        )
            elif is_code and previous_text and block.text.strip():
                lang = "erlang" if block.lang in ("erlang", "erl") else "elixir"
                item = _LIST_ITEM.match(previous_text.split("\n")[-1]) if exercise else None
                if item:
                    add(
                        "practice",
                        section,
                        f"Exercise from {where}: {item.group(1)}",
                        f"```{lang}\n{block.text}\n```",
                    )
                else:
                    add(
                        "code_qa",
                        section,
                        f"{previous_text}\n\nShow the {lang.capitalize()} code for this (from {where}).",
                        f"```{lang}\n{block.text}\n```",
                    )
            previous_text = ""
    return out


def chapter_order(paths: list[str], summary: str | None) -> list[str]:
    """Chapters in reading order: as linked from SUMMARY.md when there is one,
    the rest after it in natural order (README first, "2-x" before "10-x")."""
    linked: list[str] = []
    if summary:
        for target in re.findall(r"\]\(([^)#\s]+)", summary):
            target = target.lstrip("./")
            if target in paths and target not in linked:
                linked.append(target)
    rest = sorted((p for p in paths if p not in linked), key=_natural)
    return linked + rest


def _natural(path: str) -> tuple:
    front = "/" not in path and path.lower().startswith(("readme", "index"))
    parts = re.split(r"(\d+)", path.lower())
    return (not front, [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts])
