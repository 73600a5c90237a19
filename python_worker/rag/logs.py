"""Conversation logs as user → assistant exchanges: the one parser of ingest and the dataset builder.

Formats, told apart line by line (one file may only hold one of them in practice):

* OpenAI-style chat JSONL: `{"messages": [{"role", "content"}, ...]}` per line,
  each line a whole conversation;
* Claude Code session JSONL (`~/.claude/projects/*/*.jsonl`): one event per
  line, `type` "user" or "assistant", `message.content` a string or a list of
  content blocks. Text blocks are kept; tool_use, tool_result, thinking and
  image blocks are noise and dropped, so an assistant turn that only calls
  tools adds nothing and a user event that only returns a tool result does not
  start a new exchange. Other event types (summary, system, snapshots) and
  `isMeta`/`isSidechain` events are skipped silently: they are not dialogue;
* one message per line, `{"role", "content"}` (Mistral Vibe's
  `logs/session/*/messages.jsonl`, OpenAI messages with `tool_calls`): `tool`
  messages and tool calls are dropped;
* a Continue session, one JSON document per file
  (`~/.continue/sessions/<sessionId>.json`), shaped as Continue's published
  `Session` type (core/index.d.ts): `{"sessionId", "title",
  "workspaceDirectory", "history": [{"message": {"role", "content"},
  "contextItems", ...}]}`, content a string or a list of `text`/`imageUrl`
  parts. `thinking`, `tool` and `system` messages are dropped. Its `sessions.json`
  index (a list) is not a session, and a directory walk passes it over.

A line that is not JSON, not an object, or not one of these shapes is skipped
and reported with its line number; nothing is fatal. An exchange is a user
message followed by the assistant's answer (the assistant text up to the next
user message); its source is `PATH:LINE`, the line of the user message (in a
Continue session, the 1-based number of its history item).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# A *.jsonl file is read line by line; a *.json file is one Continue session.
LOG_SUFFIXES = (".jsonl", ".json")
NOISE_BLOCKS = frozenset({"tool_use", "tool_result", "thinking", "redacted_thinking", "image", "document"})
# Claude Code wraps slash commands and their output in these; they are not dialogue.
_COMMAND_MARKERS = ("<command-name>", "<local-command-stdout>", "<command-message>")


@dataclass(frozen=True)
class Exchange:
    user: str
    assistant: str
    source: str  # PATH:LINE of the user message
    timestamp: str = ""

    def text(self) -> str:
        """The exchange as one memory document."""
        return f"User: {self.user}\n\nAssistant: {self.assistant}"

    def messages(self) -> list[dict[str, str]]:
        """The exchange as chat messages (an SFT row)."""
        return [{"role": "user", "content": self.user}, {"role": "assistant", "content": self.assistant}]


@dataclass(frozen=True)
class Skipped:
    line: int
    reason: str


@dataclass
class ParsedLog:
    path: Path
    exchanges: list[Exchange] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


class _BadLine(ValueError):
    pass


def content_text(content: Any, where: str) -> str:
    """The text of a message's content: a string, or the text blocks of a block list (noise dropped)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content.strip()
    if not isinstance(content, list):
        raise _BadLine(f"{where} must be a string or a list of content blocks, got {type(content).__name__}")
    parts = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str):
            parts.append(block["text"])
        # Every other block (NOISE_BLOCKS, or a type we do not know) holds no dialogue text.
    return "\n".join(p.strip() for p in parts if p.strip())


class _Pairer:
    """Turns a stream of (role, text, line, timestamp) into exchanges."""

    def __init__(self, path: str, out: list[Exchange]) -> None:
        self.path = path
        self.out = out
        self.user: tuple[str, int, str] | None = None
        self.answer: list[str] = []

    def user_message(self, text: str, line: int, timestamp: str) -> None:
        self.flush()
        self.user = (text, line, timestamp)

    def assistant_message(self, text: str) -> None:
        if self.user is not None and text:
            self.answer.append(text)

    def flush(self) -> None:
        if self.user is not None and self.answer:
            text, line, timestamp = self.user
            self.out.append(Exchange(text, "\n\n".join(self.answer), f"{self.path}:{line}", timestamp))
        self.user = None
        self.answer = []


def is_log_file(path: Path) -> bool:
    """Whether a file met in a directory walk is a conversation log: any *.jsonl,
    and a *.json only when it opens as a Continue session (an object with a
    sessionId near its start, where Continue writes it), so a project's other
    JSON files and Continue's sessions.json index (a list) are passed over."""
    if path.suffix == ".jsonl":
        return True
    if path.suffix != ".json":
        return False
    with path.open("rb") as fh:
        head = fh.read(4096)
    return head.lstrip().startswith(b"{") and b'"sessionId"' in head


def parse_log(path: Path | str) -> ParsedLog:
    """Every exchange in a conversation log, and every line skipped with why."""
    path = Path(path)
    result = ParsedLog(path)
    if path.suffix == ".json":
        _continue_session(path, result)
        return result
    stream = _Pairer(str(path), result.exchanges)  # Claude Code events and message-per-line logs
    with path.open("r", encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise _BadLine(f"a JSON {type(record).__name__}, not an object")
                _record(record, lineno, str(path), stream, result.exchanges)
            except json.JSONDecodeError as exc:
                result.skipped.append(Skipped(lineno, f"not JSON ({exc.msg} at column {exc.colno})"))
            except _BadLine as exc:
                result.skipped.append(Skipped(lineno, str(exc)))
    stream.flush()
    return result


def _record(record: dict[str, Any], lineno: int, path: str, stream: _Pairer, out: list[Exchange]) -> None:
    if "messages" in record:
        _chat_line(record["messages"], lineno, path, out)
    elif record.get("type") in ("user", "assistant") and "message" in record:
        _claude_event(record, lineno, stream)
    elif "type" in record and "role" not in record:
        return  # another Claude Code event type (summary, system, snapshot): not dialogue
    elif "role" in record:
        _message_line(record, lineno, stream)
    else:
        raise _BadLine("not a chat record (no 'messages', 'type' or 'role')")


def _chat_line(messages: Any, lineno: int, path: str, out: list[Exchange]) -> None:
    if not isinstance(messages, list):
        raise _BadLine(f"'messages' must be a list, got {type(messages).__name__}")
    found: list[Exchange] = []
    pairer = _Pairer(path, found)
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise _BadLine(f"messages[{index}] must be an object with a string 'role'")
        text = content_text(message.get("content"), f"messages[{index}].content")
        role = message["role"]
        if role == "user" and text:
            pairer.user_message(text, lineno, "")
        elif role == "assistant":
            pairer.assistant_message(text)
    pairer.flush()
    out.extend(found)


def _claude_event(record: dict[str, Any], lineno: int, stream: _Pairer) -> None:
    if record.get("isMeta") or record.get("isSidechain"):
        return
    message = record["message"]
    if not isinstance(message, dict):
        raise _BadLine(f"'message' must be an object, got {type(message).__name__}")
    text = content_text(message.get("content"), "message.content")
    timestamp = record.get("timestamp") if isinstance(record.get("timestamp"), str) else ""
    if record["type"] == "user":
        if text and not text.startswith(_COMMAND_MARKERS):
            stream.user_message(text, lineno, timestamp)
    else:
        stream.assistant_message(text)


def _message_line(record: dict[str, Any], lineno: int, stream: _Pairer) -> None:
    role = record["role"]
    if not isinstance(role, str):
        raise _BadLine("'role' must be a string")
    text = content_text(record.get("content"), "content")
    timestamp = record.get("timestamp") if isinstance(record.get("timestamp"), str) else ""
    if role == "user" and text:
        stream.user_message(text, lineno, timestamp)
    elif role == "assistant":
        stream.assistant_message(text)


def _continue_session(path: Path, result: ParsedLog) -> None:
    """A Continue session file. Broken JSON is reported at its error's line, a
    document that is not a session as line 1, and a bad history item as its number."""
    try:
        session = json.loads(path.read_text(encoding="utf-8", errors="replace"))
    except json.JSONDecodeError as exc:
        result.skipped.append(Skipped(exc.lineno, f"not JSON ({exc.msg} at column {exc.colno})"))
        return
    history = session.get("history") if isinstance(session, dict) else None
    if not isinstance(history, list):
        result.skipped.append(Skipped(1, "not a Continue session (an object with a 'history' list)"))
        return
    pairer = _Pairer(str(path), result.exchanges)
    for number, item in enumerate(history, 1):
        try:
            message = item.get("message") if isinstance(item, dict) else None
            if not isinstance(message, dict) or not isinstance(message.get("role"), str):
                raise _BadLine(f"history[{number - 1}].message must be an object with a string 'role'")
            text = content_text(message.get("content"), f"history[{number - 1}].message.content")
        except _BadLine as exc:
            result.skipped.append(Skipped(number, str(exc)))
            continue
        if message["role"] == "user" and text:
            pairer.user_message(text, number, "")
        elif message["role"] == "assistant":
            pairer.assistant_message(text)
        # thinking, tool and system messages are not dialogue.
    pairer.flush()
