"""Conversation logs → stage 2 SFT rows in a small real build (stage2.conversation_logs)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from python_worker.dataset import BuildRequest, BuildResult, InvalidRequest, parse_config
from python_worker.dataset.build import build
from python_worker.dataset.conversations import elixir_code
from python_worker.tests.test_dataset_corpus import HUMANEVAL, _package, _write_manifest, elixir_module

ANSWER = "Use a pipeline:\n\n```elixir\ndefmodule Totals do\n  def sum(xs), do: xs |> Enum.sum()\nend\n```\n"
SECRET_ANSWER = (
    'Configure it like this:\n\n```elixir\nconfig :ex_aws,\n  access_key_id: "AKIAIOSFODNN7ABCDEFG"\n```\n'
    "and call ExAws from your module."
)


def claude(kind: str, content: object) -> str:
    return json.dumps({"type": kind, "message": {"role": kind, "content": content}})


def build_with_logs(tmp_path: Path, raw: Path, logs: Path) -> tuple[BuildResult, list[dict]]:
    """A real build of `raw` with `logs` as stage2.conversation_logs; its result and stage-2 rows."""
    config = parse_config(
        json.dumps({"replay": {"share": 0}, "workers": 1, "stage2": {"conversation_logs": [str(logs)]}})
    )
    result = build(
        BuildRequest(inputs=[str(raw)], out_dir=str(tmp_path / "out"), config=config, seed=1),
        lambda _event: None,
        threading.Event(),
    )
    rows = [
        json.loads(line)
        for split in ("train", "eval")
        for line in (result.out_dir / "stage2" / f"{split}.jsonl").read_text().splitlines()
    ]
    return result, rows


def test_exchanges_with_elixir_code_become_scrubbed_deduplicated_decontaminated_stage2_rows(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    rows = [
        _package(raw, f"code{i}", "1.0.0", {f"lib/code{i}.ex": elixir_module(f"Code{i}", i)}, 10, ["MIT"])
        for i in range(3)
    ]
    _write_manifest(raw, rows)
    humaneval = json.loads(HUMANEVAL.read_text().splitlines()[0])["prompt"]
    contaminated = f"```elixir\n{humaneval}numbers |> Enum.sort()\n  end\nend\n```"
    chat = [
        {"messages": [{"role": "user", "content": "How do I sum a list?"}, {"role": "assistant", "content": ANSWER}]},
        {"messages": [{"role": "user", "content": "How do I sum a list?"}, {"role": "assistant", "content": ANSWER}]},
        {
            "messages": [
                {"role": "user", "content": "What is OTP?"},
                {"role": "assistant", "content": "A set of libraries."},
            ]
        },
        {"messages": [{"role": "user", "content": "Set up ExAws?"}, {"role": "assistant", "content": SECRET_ANSWER}]},
        {"messages": [{"role": "user", "content": "Solve this"}, {"role": "assistant", "content": contaminated}]},
    ]
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "chat.jsonl").write_text("\n".join(json.dumps(c) for c in chat) + "\n{broken\n")
    (logs / "session.jsonl").write_text(
        "\n".join(
            [
                claude("user", "Write a GenServer counter"),
                claude(
                    "assistant",
                    [
                        {"type": "thinking", "thinking": "plan it"},
                        {"type": "tool_use", "id": "t", "name": "Write", "input": {"x": 1}},
                    ],
                ),
                claude("user", [{"type": "tool_result", "tool_use_id": "t", "content": "written"}]),
                claude(
                    "assistant",
                    [
                        {
                            "type": "text",
                            "text": "```elixir\ndefmodule Counter do\n  use GenServer\n  def init(n), do: {:ok, n}\nend\n```",
                        }
                    ],
                ),
            ]
        )
        + "\n"
    )
    result, stage2 = build_with_logs(tmp_path, raw, logs)
    out = result.out_dir
    convo = [r for r in stage2 if r["kind"] == "conversation"]
    by_user = {r["messages"][1]["content"]: r for r in convo}
    assert sorted(by_user) == ["How do I sum a list?", "Set up ExAws?", "Write a GenServer counter"]
    counter = by_user["Write a GenServer counter"]
    assert counter["messages"][0]["role"] == "system" and counter["messages"][2]["content"].startswith("```elixir")
    assert "plan it" not in json.dumps(counter) and "written" not in json.dumps(counter)  # tool noise dropped
    assert counter["path"] == f"{logs / 'session.jsonl'}:1" and counter["source"] == "conversations"
    assert "AKIAIOSFODNN7ABCDEFG" not in json.dumps(by_user["Set up ExAws?"])  # scrubbed like code

    summary = result.manifest["conversations"]
    assert (summary["files"], summary["exchanges"], summary["rows"], summary["skipped_lines"]) == (2, 6, 3, 1)
    assert summary["drops"] == {"contaminated": 1, "exact_duplicate": 1, "no_elixir_code": 1}
    assert summary["skipped_first"][0].startswith(f"{logs / 'chat.jsonl'}:6: not JSON")
    assert result.manifest["row_kinds"]["stage2.conversation"] == 3
    assert any(c["source"] == "conversations" for c in result.manifest["contaminated_files"])
    assert result.manifest["secrets"]
    report = (out / "REPORT.md").read_text()
    assert "## Conversation logs" in report and "3 kept as stage 2 rows" in report


def test_a_continue_sessions_directory_gives_stage2_rows(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    _write_manifest(raw, [_package(raw, "a", "1.0.0", {"lib/a.ex": elixir_module("A", 1)}, 10, ["MIT"])])
    sessions = tmp_path / ".continue" / "sessions"
    sessions.mkdir(parents=True)
    history = [
        {"message": {"role": "user", "content": "How do I sum a list?"}, "contextItems": []},
        {"message": {"role": "thinking", "content": "easy"}, "contextItems": []},
        {"message": {"role": "assistant", "content": [{"type": "text", "text": ANSWER}]}, "contextItems": []},
    ]
    session = {"sessionId": "9e1", "title": "Sums", "workspaceDirectory": "/w", "history": history}
    (sessions / "9e1.json").write_text(json.dumps(session, indent=2))
    (sessions / "sessions.json").write_text(json.dumps([{"sessionId": "9e1", "title": "Sums", "dateCreated": "1"}]))
    result, rows = build_with_logs(tmp_path, raw, sessions)
    (row,) = [r for r in rows if r["kind"] == "conversation"]
    assert [m["content"] for m in row["messages"][1:]] == ["How do I sum a list?", ANSWER.strip()]
    assert row["path"] == f"{(sessions / '9e1.json').resolve()}:1"
    summary = result.manifest["conversations"]
    assert (summary["files"], summary["exchanges"], summary["rows"], summary["skipped_lines"]) == (1, 1, 1, 0)


def test_a_missing_log_path_fails_before_any_work(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    _write_manifest(raw, [_package(raw, "a", "1.0.0", {"lib/a.ex": elixir_module("A", 1)}, 10, ["MIT"])])
    config = parse_config(json.dumps({"stage2": {"conversation_logs": [str(tmp_path / "nope")]}}))
    with pytest.raises(InvalidRequest, match=r"stage2.conversation_logs\[0\]: no such file or directory"):
        build(BuildRequest(inputs=[str(raw)], out_dir=str(tmp_path / "out"), config=config), print, threading.Event())


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("```elixir\nIO.puts(1)\n```", True),
        ("```exs\nx = 1\n```", True),
        ("```\ndefmodule A do\nend\n```", True),
        ("```python\ndef f(): pass\n```", False),
        ("Use Enum.map/2 on the list.", False),
    ],
)
def test_elixir_code_is_told_by_fence_tag_or_content(answer: str, expected: bool) -> None:
    assert elixir_code(answer) is expected
