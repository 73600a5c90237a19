"""Shared helpers for the training tests: a small curriculum dataset and job runners.

No tests here; the test_training_* modules import these helpers. The model is
conftest's session fixture `tiny_model` (data/models/tiny-elixir, built if missing).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from pathlib import Path

from python_worker.job_events import Event

SYSTEM = "You are an Elixir expert."


def elixir_snippet(i: int) -> str:
    return (
        f"defmodule Demo.Mod{i} do\n"
        f'  @moduledoc "Helpers number {i}."\n'
        "  def add(a, b), do: a + b\n"
        "  def double(x), do: x * 2\n"
        '  def greet(name), do: "hello " <> name\n'
        "end\n"
    )


def _write(path: Path, rows: Iterable[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")


def chat_row(i: int) -> dict:
    return {
        "messages": [
            {"role": "system", "content": SYSTEM},
            {
                "role": "user",
                "content": f"Write a function that doubles x (variant {i}).",
            },
            {"role": "assistant", "content": "def double(x), do: x * 2"},
        ],
        "source": f"pkg_chat{i % 5}",
        "path": "lib/chat.ex",
    }


def fim_row(i: int) -> dict:
    prefix, middle, suffix = (
        f"defmodule M{i} do\n  def add(a, b), do: ",
        "a + b",
        "\nend\n",
    )
    return {
        "text": f"<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>{middle}",
        "prefix": prefix,
        "middle": middle,
        "suffix": suffix,
        "source": f"pkg_fim{i % 5}",
        "path": "lib/fim.ex",
    }


def replay_row(i: int) -> dict:
    return {
        "text": f"def func_{i}(x):\n    return x + {i}\n",
        "source": "replay",
        "path": f"lib/python/mod{i}.py",
    }


def write_dataset(root: Path) -> Path:
    """stage{1,2,3}/{train,eval}.jsonl in issue 4's format, small enough for CPU tests."""
    text = [{"text": elixir_snippet(i), "source": f"pkg{i % 7}", "path": f"lib/m{i}.ex"} for i in range(120)]
    _write(root / "stage1" / "train.jsonl", text[:96] + [replay_row(i) for i in range(8)])
    _write(root / "stage1" / "eval.jsonl", text[96:])
    _write(
        root / "stage2" / "train.jsonl",
        [r for i in range(24) for r in (chat_row(i), fim_row(i))] + [replay_row(i) for i in range(4)],
    )
    _write(
        root / "stage2" / "eval.jsonl",
        [chat_row(100), fim_row(100), chat_row(101), fim_row(101)],
    )
    book = [
        {
            "messages": [
                {"role": "user", "content": f"Chapter {i}: what does Enum.map do?"},
                {
                    "role": "assistant",
                    "content": "It applies a function to every element.",
                },
            ],
            "source": "book",
            "path": f"guide/ch{i}.md",
            "curriculum_index": i,
        }
        for i in range(16)
    ]
    _write(root / "stage3" / "train.jsonl", book)
    _write(root / "stage3" / "eval.jsonl", book[:4])
    _write(root / "general.jsonl", [replay_row(100 + i) for i in range(6)])
    return root


def collect(events: Iterable) -> list:
    return list(events)


def run_job(job, cancel: threading.Event | None = None, on_event=None) -> list[Event]:
    """Run a validated TrainJob in this thread and return its events."""
    from python_worker.training.recipe import run_training

    cancel = cancel or threading.Event()
    seen: list[Event] = []

    def emit(event: Event) -> None:
        seen.append(event)
        if on_event is not None:
            on_event(event, cancel)

    run_training(job, emit, cancel)
    return seen


def kinds(events: list[Event]) -> list[str]:
    return [e.kind for e in events]


def losses_by_step(events: list[Event]) -> dict[int, float]:
    return {e.step: e.metrics["loss"] for e in events if e.kind == "PROGRESS" and "loss" in e.metrics}
