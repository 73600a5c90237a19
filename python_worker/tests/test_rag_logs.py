"""Conversation-log parsing and Markdown/Elixir chunking (plain functions, no model)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from python_worker.rag import chunking, logs


def write_lines(path: Path, lines: list[object]) -> Path:
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return path


def claude(kind: str, content: object, **extra: object) -> dict:
    return {"type": kind, "message": {"role": kind, "content": content}, "timestamp": "2026-01-02T03:04:05Z", **extra}


def test_openai_chat_lines_give_one_exchange_per_user_turn(tmp_path: Path) -> None:
    log = write_lines(
        tmp_path / "chat.jsonl",
        [
            {
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": "What is a GenServer?"},
                    {"role": "assistant", "content": [{"type": "text", "text": "A process abstraction."}]},
                    {"role": "user", "content": "And a Supervisor?"},
                    {"role": "assistant", "content": "It restarts children."},
                    {"role": "user", "content": "unanswered"},
                ]
            },
        ],
    )
    parsed = logs.parse_log(log)
    assert parsed.skipped == []
    assert [(e.user, e.assistant, e.source) for e in parsed.exchanges] == [
        ("What is a GenServer?", "A process abstraction.", f"{log}:1"),
        ("And a Supervisor?", "It restarts children.", f"{log}:1"),
    ]
    assert parsed.exchanges[0].text() == "User: What is a GenServer?\n\nAssistant: A process abstraction."
    assert parsed.exchanges[0].messages()[1] == {"role": "assistant", "content": "A process abstraction."}


def test_claude_code_sessions_keep_text_and_drop_tool_and_thinking_noise(tmp_path: Path) -> None:
    log = write_lines(
        tmp_path / "session.jsonl",
        [
            {"type": "summary", "summary": "Fixing tests", "leafUuid": "x"},
            claude("user", "Why does my test fail?"),
            claude("assistant", [{"type": "thinking", "thinking": "secret musing"}]),
            claude(
                "assistant",
                [
                    {"type": "text", "text": "Let me run it."},
                    {"type": "tool_use", "id": "t1", "name": "Bash", "input": {}},
                ],
            ),
            claude("user", [{"type": "tool_result", "tool_use_id": "t1", "content": "1 failure"}]),
            claude("assistant", [{"type": "text", "text": "The assertion compares a charlist."}]),
            claude("user", "<command-name>/clear</command-name>"),
            claude("user", "meta note", isMeta=True),
            claude("user", [{"type": "text", "text": "Thanks! Now rename it."}]),
            claude("assistant", "Renamed."),
        ],
    )
    parsed = logs.parse_log(log)
    assert parsed.skipped == []
    assert [(e.user, e.assistant, e.source) for e in parsed.exchanges] == [
        ("Why does my test fail?", "Let me run it.\n\nThe assertion compares a charlist.", f"{log}:2"),
        ("Thanks! Now rename it.", "Renamed.", f"{log}:9"),
    ]
    assert parsed.exchanges[0].timestamp == "2026-01-02T03:04:05Z"
    assert "secret musing" not in parsed.exchanges[0].text() and "1 failure" not in parsed.exchanges[0].text()


def test_message_per_line_logs_drop_tool_messages(tmp_path: Path) -> None:
    log = write_lines(
        tmp_path / "messages.jsonl",
        [
            {"role": "user", "content": "List the files"},
            {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "function": {"name": "ls"}}]},
            {"role": "tool", "content": "a.ex b.ex", "tool_call_id": "c1"},
            {"role": "assistant", "content": "There are two: a.ex and b.ex."},
        ],
    )
    (exchange,) = logs.parse_log(log).exchanges
    assert (exchange.user, exchange.assistant, exchange.source) == (
        "List the files",
        "There are two: a.ex and b.ex.",
        f"{log}:1",
    )


def test_malformed_lines_are_skipped_and_counted_with_their_line_numbers(tmp_path: Path) -> None:
    log = write_lines(
        tmp_path / "bad.jsonl",
        [
            {"messages": [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "A1"}]},
            "{not json",
            "[1, 2]",
            "",
            {"messages": "nope"},
            {"messages": [{"content": "no role"}]},
            {"hello": "world"},
            claude("user", 42),
            {"messages": [{"role": "user", "content": "Q2"}, {"role": "assistant", "content": "A2"}]},
        ],
    )
    parsed = logs.parse_log(log)
    assert [e.user for e in parsed.exchanges] == ["Q1", "Q2"]
    assert [s.line for s in parsed.skipped] == [2, 3, 5, 6, 7, 8]
    reasons = [s.reason for s in parsed.skipped]
    assert reasons[0].startswith("not JSON") and "not an object" in reasons[1]
    assert "'messages' must be a list" in reasons[2] and "messages[0]" in reasons[3]
    assert "not a chat record" in reasons[4] and "message.content" in reasons[5]


def continue_session(path: Path, history: list[object]) -> Path:
    """A session file as Continue writes it: its `Session` type, pretty-printed."""
    session = {"sessionId": "5f0c", "title": "GenServer help", "workspaceDirectory": "/w", "history": history}
    path.write_text(json.dumps(session, indent=2))
    return path


def item(role: str, content: object, **message: object) -> dict:
    return {"message": {"role": role, "content": content, **message}, "contextItems": []}


def test_continue_sessions_keep_text_and_drop_thinking_tool_and_image_parts(tmp_path: Path) -> None:
    log = continue_session(
        tmp_path / "5f0c.json",
        [
            item("system", "You are helpful."),
            item("user", [{"type": "text", "text": "Write a counter"}, {"type": "imageUrl", "imageUrl": {"url": "x"}}]),
            item("thinking", "private reasoning"),
            item("assistant", "", toolCalls=[{"id": "c", "type": "function", "function": {"name": "read"}}]),
            {"message": {"role": "tool", "content": "file body", "toolCallId": "c"}, "contextItems": []},
            item("assistant", [{"type": "text", "text": "```elixir\ndefmodule Counter do\nend\n```"}]),
            item("user", "Thanks"),
            item("assistant", "You're welcome."),
        ],
    )
    parsed = logs.parse_log(log)
    assert parsed.skipped == []
    assert [(e.user, e.assistant, e.source) for e in parsed.exchanges] == [
        ("Write a counter", "```elixir\ndefmodule Counter do\nend\n```", f"{log}:2"),
        ("Thanks", "You're welcome.", f"{log}:7"),
    ]
    assert all("private reasoning" not in e.text() and "file body" not in e.text() for e in parsed.exchanges)


def test_a_broken_continue_session_is_reported_not_fatal(tmp_path: Path) -> None:
    bad_item = continue_session(
        tmp_path / "a.json", [item("user", "Q"), {"message": "nope"}, item("user", 7), item("assistant", "A")]
    )
    parsed = logs.parse_log(bad_item)
    assert [(e.user, e.assistant) for e in parsed.exchanges] == [("Q", "A")]
    assert [(s.line, s.reason) for s in parsed.skipped] == [
        (2, "history[1].message must be an object with a string 'role'"),
        (3, "history[2].message.content must be a string or a list of content blocks, got int"),
    ]
    (tmp_path / "b.json").write_text('{"sessionId": "b", "history": [')
    (tmp_path / "c.json").write_text('[{"sessionId": "c", "title": "the index"}]')
    assert logs.parse_log(tmp_path / "b.json").skipped[0].reason.startswith("not JSON")
    assert logs.parse_log(tmp_path / "c.json").skipped[0].reason.startswith("not a Continue session")


def test_a_directory_walk_takes_json_only_when_it_is_a_continue_session(tmp_path: Path) -> None:
    session = continue_session(tmp_path / "5f0c.json", [])
    (tmp_path / "sessions.json").write_text('[{"sessionId": "5f0c"}]')
    (tmp_path / "package.json").write_text('{"name": "x"}')
    (tmp_path / "chat.jsonl").write_text("")
    found = sorted(p.name for p in tmp_path.iterdir() if logs.is_log_file(p))
    assert found == ["5f0c.json", "chat.jsonl"] and session.exists()


def test_markdown_is_cut_at_headings_outside_code_fences(tmp_path: Path) -> None:
    doc = tmp_path / "guide.md"
    doc.write_text(
        "# Guide\nIntro line.\n\n## Setup\nInstall Erlang.\n```sh\n# not a heading\nmake\n```\n\n### Linux\napt install elixir\n"
    )
    chunks = chunking.chunk_file(doc)
    assert [c.source for c in chunks] == [f"{doc}#guide", f"{doc}#setup", f"{doc}#linux"]
    assert all(c.kind == "markdown" for c in chunks)
    assert "# not a heading" in chunks[1].text and "make" in chunks[1].text
    # The heading path leads and the previous section's last lines overlap into the next.
    assert chunks[2].text.startswith("Guide > Setup > Linux") and "```" in chunks[2].text
    assert "apt install elixir" in chunks[2].text


def test_a_long_section_is_cut_into_overlapping_windows(tmp_path: Path) -> None:
    doc = tmp_path / "long.md"
    doc.write_text("# Long\n" + "".join(f"Line {i} says something about processes.\n" for i in range(200)))
    chunks = chunking.chunk_file(doc)
    assert len(chunks) > 3 and all(len(c.text) <= chunking.MAX_CHARS + 100 for c in chunks)
    for before, after in itertools.pairwise(chunks):
        assert before.text.splitlines()[-1] in after.text  # they overlap


ELIXIR = '''defmodule Shop.Cart do
  @moduledoc """
  A shopping cart.
  """
  alias Shop.Item

  @doc """
  Adds an item.

      def not_a_definition
  """
  @spec add(t, Item.t()) :: t
  def add(cart, item), do: [item | cart]

  @doc "Totals the cart."
  def total([]), do: 0
  def total([item | rest]), do: item.price + total(rest)

  defp helper(x) do
    x
  end
end
'''


def test_elixir_is_cut_at_top_level_definitions_with_their_docs(tmp_path: Path) -> None:
    source = tmp_path / "cart.ex"
    source.write_text(ELIXIR)
    chunks = chunking.chunk_file(source)
    assert [c.source for c in chunks] == [f"{source}:1", f"{source}:7", f"{source}:15", f"{source}:19"]
    preamble, add, total, helper = (c.text for c in chunks)
    assert "@moduledoc" in preamble and "alias Shop.Item" in preamble and "def add" not in preamble
    assert add.count("def add") == 1 and "@spec add" in add and "def not_a_definition" in add
    # Both clauses of total/1 stay together, with their @doc; each chunk repeats the end of the previous one.
    assert '@doc "Totals the cart."' in total and "def total([])" in total and "def total([item" in total
    assert "def add(cart, item)" in total
    assert "defp helper" in helper and all(c.kind == "code" for c in chunks)
