"""`mix chat` as a person uses it: in a pseudo-terminal against the real host
(answers stream, Ctrl-C stops one on the worker, the chat goes on, Ctrl-D
quits), and with piped stdin, also with no host up (it starts one itself)."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.host_process import ROOT, HostProcess, free_port, post_json

# Long enough that an unstopped answer would hold the worker's only batch slot
# for several seconds (the tiny model has a 2,048-token context).
LONG = 1800


@pytest.fixture(scope="module")
def one_slot_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostProcess]:
    """One batch slot and no queue: a generation that was not really stopped
    makes the next request fail with 429."""
    env = {"MAX_BATCH_SIZE": "1", "MAX_WAITING_REQUESTS": "0"}
    with HostProcess(tmp_path_factory.mktemp("chat"), env) as host:
        yield host


def chat_env(port: int, data_dir: Path) -> dict[str, str]:
    env = {**os.environ, "HTTP_PORT": str(port), "DATA_DIR": str(data_dir), "TERM": "dumb"}
    env.pop("API_TOKEN", None)
    return env


class Pty:
    """A child in a pseudo-terminal, read with deadlines."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str]):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child
            os.chdir(cwd)
            os.execvpe(argv[0], argv, env)
        self.seen = b""

    def read_until(self, marker: bytes, timeout: float = 60.0, start: int = 0) -> bytes:
        deadline = time.monotonic() + timeout
        while marker not in self.seen[start:]:
            assert time.monotonic() < deadline, (
                f"{marker!r} not seen; output so far:\n{self.seen.decode(errors='replace')}"
            )
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if ready:
                try:
                    self.seen += os.read(self.fd, 65536)
                except OSError:  # the child closed the terminal
                    break
        return self.seen[start:]

    def read_bytes(self, count: int, start: int, timeout: float = 60.0) -> bytes:
        """Waits until `count` bytes have arrived after offset `start`."""
        deadline = time.monotonic() + timeout
        while len(self.seen) - start < count:
            assert time.monotonic() < deadline, f"no output; so far:\n{self.seen.decode(errors='replace')}"
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if ready:
                self.seen += os.read(self.fd, 65536)
        return self.seen[start:]

    def write(self, data: bytes) -> None:
        os.write(self.fd, data)

    def wait(self, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if ready:
                try:
                    self.seen += os.read(self.fd, 65536)
                except OSError:
                    pass
        os.kill(self.pid, signal.SIGKILL)
        raise AssertionError(f"mix chat did not exit; output:\n{self.seen.decode(errors='replace')}")


def completion_status(port: int) -> int:
    status, _ = post_json(
        f"http://127.0.0.1:{port}/v1/completions", {"prompt": "defmodule X do", "max_tokens": 2}, timeout=30
    )
    return status


def stop_an_answer(chat: Pty, prompt: bytes, key: bytes, tries: int = 5) -> bytes:
    """Asks `prompt` at the chat's prompt, presses `key` once the answer streams, and
    returns what the chat printed from the answer to the next prompt.

    The model samples, so it may end an answer on its own before the key arrives.
    The key then lands on the prompt line, Enter drops that line, and the question
    is asked again."""
    for _ in range(tries):
        mark = len(chat.seen)
        chat.write(prompt + b"\r")
        # The answer streams: its text arrives after the echoed prompt line.
        answer_at = mark + len(prompt) + len(b"\r\n")
        chat.read_bytes(8, start=answer_at)
        chat.write(key)
        printed = chat.read_until(b"you> ", start=answer_at)
        if b"(stopped)" in printed:
            return printed
        # The answer ended first: drop the line that holds the key.
        retry_at = len(chat.seen)
        chat.write(b"\r")
        chat.read_until(b"you> ", start=retry_at)
    raise AssertionError(f"every answer ended before the stop key; output:\n{chat.seen.decode(errors='replace')}")


def test_in_a_terminal_answers_stream_ctrl_c_stops_on_the_worker_and_ctrl_d_quits(
    one_slot_host: HostProcess,
) -> None:
    chat = Pty(
        ["mix", "chat", "--max-tokens", str(LONG)],
        ROOT / "elixir",
        chat_env(one_slot_host.port, one_slot_host.data_dir),
    )
    chat.read_until(b"you> ")
    printed = stop_an_answer(chat, b"defmodule Stack do", b"\x03")
    answer, after = printed.split(b"(stopped)")
    assert answer.strip(), printed
    # The chat goes on, and its next prompt comes after the notice, not before.
    assert b"you> " in after, printed
    # Stopped on the worker, not only in the terminal: its only batch slot frees
    # long before 1,800 tokens could have been written.
    started = time.monotonic()
    while completion_status(one_slot_host.port) == 429:
        assert time.monotonic() - started < 3.0, "the stopped answer still holds the worker's batch slot"
    assert completion_status(one_slot_host.port) == 200

    mark = len(chat.seen)
    chat.write(b"/model\r")
    assert b"available:" in chat.read_until(b"available:", start=mark)
    chat.read_until(b"you> ", start=mark)
    assert b"(stopped)" in stop_an_answer(chat, b"  def push(stack, x) do", b"\x1b")  # Esc stops too
    chat.write(b"\x04")
    assert chat.wait() == 0


def test_a_stop_key_on_the_prompt_line_drops_the_line(one_slot_host: HostProcess) -> None:
    """A stop key pressed just after an answer ended is not sent as a question."""
    chat = Pty(
        ["mix", "chat", "--max-tokens", "4"], ROOT / "elixir", chat_env(one_slot_host.port, one_slot_host.data_dir)
    )
    chat.read_until(b"you> ")
    for key in (b"\x03", b"\x1b"):
        mark = len(chat.seen)
        chat.write(key + b"\r")
        printed = chat.read_until(b"you> ", start=mark)
        assert b"(line dropped: Ctrl-C or Esc stops an answer; Ctrl-D quits)" in printed, printed
    chat.write(b"\x04")
    assert chat.wait() == 0


def test_piped_stdin_prints_only_the_answers(one_slot_host: HostProcess) -> None:
    result = subprocess.run(
        ["mix", "chat", "--max-tokens", "6", "--system", "You write Elixir."],
        cwd=ROOT / "elixir",
        env=chat_env(one_slot_host.port, one_slot_host.data_dir),
        input="defmodule Queue do\n\n/help\n  def new do\n",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    answers = result.stdout.split("\n")
    assert len([a for a in answers if a.strip()]) >= 1, result.stdout
    assert "you>" not in result.stdout
    # Notices go to stderr (an answer's "(cut at the token limit)" too, but the
    # sampled model may end each answer before its limit).
    assert "commands: /reset" in result.stderr and "commands:" not in result.stdout, result.stderr


def test_an_unknown_model_is_refused_with_the_available_ids(one_slot_host: HostProcess) -> None:
    result = subprocess.run(
        ["mix", "chat", "--model", "no-such-model"],
        cwd=ROOT / "elixir",
        env=chat_env(one_slot_host.port, one_slot_host.data_dir),
        input="hi\n",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "unknown model" in result.stderr + result.stdout and "available" in result.stderr + result.stdout


def test_with_no_host_up_it_starts_one_in_its_own_process(tmp_path: Path) -> None:
    result = subprocess.run(
        ["mix", "chat", "--max-tokens", "4"],
        cwd=ROOT / "elixir",
        env=chat_env(free_port(), tmp_path),
        # Three prompts: a sampled answer may be empty (end of text first).
        input="defmodule Tree do\n  def new do\n  def insert(tree, x) do\n",
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "starting one in this process" in result.stderr
    assert result.stdout.strip(), result.stderr
