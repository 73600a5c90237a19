"""Elixir syntax via tree-sitter-elixir: modules, functions, docs and spans.

One parse per file serves both the FIM span picker and the pair miner. All
positions handed out are *character* offsets into the Python string (tree-sitter
counts bytes; `Parsed.char` converts), so slicing the text is always safe.

This is a reading of the syntax, not a compiler: code that does not parse still
yields whatever well-formed parts tree-sitter recovers.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import tree_sitter_elixir
from tree_sitter import Language, Node, Parser

DEF_KINDS = ("def", "defp", "defmacro", "defmacrop")

_parser: Parser | None = None


def parser() -> Parser:
    global _parser
    if _parser is None:
        _parser = Parser(Language(tree_sitter_elixir.language()))
    return _parser


@dataclass
class Function:
    module: str
    name: str
    arity: int
    kind: str
    start: int  # first clause, from the start of its line
    end: int  # last clause, through the end of its line
    doc: str | None = None
    specs: list[str] = field(default_factory=list)
    bodies: list[tuple[int, int]] = field(default_factory=list)  # do-block body lines

    @property
    def signature(self) -> str:
        return f"{self.name}/{self.arity}"


@dataclass
class Module:
    name: str
    start: int
    end: int
    moduledoc: str | None
    functions: list[Function]
    uses_exunit: bool
    describes: list[tuple[str, int, int]]  # (title, start, end) of `describe` blocks


class Parsed:
    def __init__(self, text: str) -> None:
        self.text = text
        self.data = text.encode("utf-8")
        self.tree = parser().parse(self.data)
        if len(self.data) == len(text):
            self._chars = None
        else:
            lead = (np.frombuffer(self.data, dtype=np.uint8) & 0xC0) != 0x80
            self._chars = np.concatenate([[0], np.cumsum(lead)])

    @property
    def root(self) -> Node:
        return self.tree.root_node

    def char(self, byte_offset: int) -> int:
        return byte_offset if self._chars is None else int(self._chars[byte_offset])

    def span(self, node: Node) -> tuple[int, int]:
        return self.char(node.start_byte), self.char(node.end_byte)

    def src(self, node: Node) -> str:
        return self.data[node.start_byte : node.end_byte].decode("utf-8", "replace")

    def line_start(self, pos: int) -> int:
        return self.text.rfind("\n", 0, pos) + 1

    def line_end(self, pos: int) -> int:
        """Index just past the newline ending the line that holds pos-1."""
        i = self.text.find("\n", pos)
        return len(self.text) if i < 0 else i + 1

    def walk(self) -> Iterator[Node]:
        stack = [self.root]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))


def call_name(node: Node) -> str | None:
    """`def` for `def f(x) do ... end`; None for calls on a dot (`Foo.bar(x)`)."""
    if node.type != "call":
        return None
    target = node.child_by_field_name("target")
    if target is not None and target.type == "identifier":
        return target.text.decode() if target.text else None
    return None


def child(node: Node, type_: str) -> Node | None:
    for c in node.children:
        if c.type == type_:
            return c
    return None


def do_block_body(p: Parsed, block: Node) -> tuple[int, int] | None:
    """The whole lines between `do` and `end` of a multi-line do-block."""
    do_tok, end_tok = block.children[0], block.children[-1]
    if do_tok.type != "do" or end_tok.type != "end":
        return None
    start = p.line_end(p.char(do_tok.end_byte))
    end = p.line_start(p.char(end_tok.start_byte))
    if start >= end or not p.text[start:end].strip():
        return None
    return start, end


def keyword_do_value(call: Node) -> Node | None:
    """The expression after `do:` in `def f(x), do: expr`."""
    args = child(call, "arguments")
    if args is None:
        return None
    kw = child(args, "keywords")
    if kw is None:
        return None
    for pair in kw.children:
        if pair.type == "pair" and pair.children and pair.children[0].text == b"do: ":
            return pair.children[-1]
    return None


def string_content(p: Parsed, node: Node) -> str | None:
    """The text of a string, heredoc or ~S/~s sigil literal, dedented; None otherwise."""
    if node.type not in ("string", "sigil"):
        return None
    if node.type == "sigil":
        name = child(node, "sigil_name")
        if name is None or name.text not in (b"S", b"s"):
            return None
    parts = [p.src(c) for c in node.children if c.type in ("quoted_content", "escape_sequence")]
    if any(c.type == "interpolation" for c in node.children):
        return None
    raw = "".join(parts)
    if raw.startswith("\n"):  # heredoc: Elixir strips the closing quotes' indentation
        raw = textwrap.dedent(raw[1:])
    return raw.strip("\n")


def _def_head(call: Node) -> tuple[str, int] | None:
    args = child(call, "arguments")
    if args is None or not args.named_children:
        return None
    head = args.named_children[0]
    if head.type == "binary_operator" and child(head, "when") is not None:
        head = head.named_children[0]
    if head.type == "identifier":
        return head.text.decode(), 0
    if head.type == "call" and call_name(head) is not None:
        inner = child(head, "arguments")
        arity = len(inner.named_children) if inner is not None else 0
        return call_name(head) or "", arity
    return None


def _attribute(p: Parsed, node: Node) -> tuple[str, Node | None] | None:
    """('doc', arg) for `@doc arg`."""
    if node.type != "unary_operator" or not node.children or node.children[0].type != "@":
        return None
    inner = node.children[-1]
    if inner.type == "call":
        name = call_name(inner)
        args = child(inner, "arguments")
        arg = args.named_children[0] if args is not None and args.named_children else None
        return (name or "", arg)
    if inner.type == "identifier":
        return inner.text.decode(), None
    return None


def modules(p: Parsed) -> list[Module]:
    """Every defmodule (nested ones too), in source order."""
    out: list[Module] = []
    for node in p.walk():
        if call_name(node) != "defmodule":
            continue
        args = child(node, "arguments")
        block = child(node, "do_block")
        if args is None or block is None or not args.named_children:
            continue
        name = p.src(args.named_children[0])
        out.append(_module(p, name, node, block))
    return out


def _module(p: Parsed, name: str, node: Node, block: Node) -> Module:
    start, end = p.span(node)
    moduledoc: str | None = None
    uses_exunit = False
    functions: list[Function] = []
    describes: list[tuple[str, int, int]] = []
    doc: str | None = None
    specs: list[str] = []
    attrs_pending = False
    for stmt in block.named_children:
        attr = _attribute(p, stmt)
        if attr is not None:
            key, arg = attr
            if key == "moduledoc" and arg is not None:
                moduledoc = string_content(p, arg)
            elif key == "doc" and arg is not None:
                doc = string_content(p, arg)
                attrs_pending = True
            elif key == "spec" and arg is not None:
                specs.append(p.src(stmt))
                attrs_pending = True
            continue
        kind = call_name(stmt)
        if kind == "use" and b"ExUnit.Case" in (stmt.text or b""):
            uses_exunit = True
        if kind == "describe":
            args = child(stmt, "arguments")
            title = string_content(p, args.named_children[0]) if args and args.named_children else None
            if title:
                s, e = p.span(stmt)
                describes.append((title, p.line_start(s), p.line_end(e)))
            continue
        if kind not in DEF_KINDS:
            if kind is not None:
                doc, specs, attrs_pending = None, [], False
            continue
        head = _def_head(stmt)
        if head is None:
            continue
        s, e = p.span(stmt)
        body = None
        blk = child(stmt, "do_block")
        if blk is not None:
            body = do_block_body(p, blk)
        prev = functions[-1] if functions else None
        if prev is not None and not attrs_pending and (prev.name, prev.arity, prev.kind) == (head[0], head[1], kind):
            # Another clause of the same function.
            prev.end = p.line_end(e)
            if body:
                prev.bodies.append(body)
            continue
        functions.append(
            Function(
                module=name,
                name=head[0],
                arity=head[1],
                kind=kind,
                start=p.line_start(s),
                end=p.line_end(e),
                doc=doc,
                specs=specs,
                bodies=[body] if body else [],
            )
        )
        doc, specs, attrs_pending = None, [], False
    return Module(
        name,
        p.line_start(start),
        p.line_end(end),
        moduledoc,
        functions,
        uses_exunit,
        describes,
    )
