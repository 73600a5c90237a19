"""End to end: trained adapters served by the real host (yaws -> Port -> worker).

Blue-green activation through `POST /api/adapters/activate` while a stream is
in flight, adapter model ids in /v1/models, rollback, and the active adapter
surviving `kill -9` of the worker and a restart of the host.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI

from python_worker.tests.test_adapters import make_adapter
from tests.host_process import TINY_MODEL, HostProcess, get_json, post_json

TOKEN = "adapters-e2e-admin-token"
PROMPT = "defmodule Queue do\n  def push(queue, item) do\n"
LONG = 400  # tokens: seconds on the tiny model, so the activation lands mid-stream


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (TINY_MODEL / "config.json").exists():
        pytest.fail(f"the tiny model is missing at {TINY_MODEL}; run `make model`")
    root = tmp_path_factory.mktemp("adapters-host")
    make_adapter(TINY_MODEL, root / "adapters" / "run1" / "stage1", seed=11)
    make_adapter(TINY_MODEL, root / "adapters" / "run1" / "stage2", seed=12)
    return root


@pytest.fixture(scope="module")
def host(data_dir: Path) -> Iterator[HostProcess]:
    with HostProcess(data_dir, env={"ADMIN_TOKEN": TOKEN}) as running:
        yield running


def client(host: HostProcess) -> OpenAI:
    return OpenAI(base_url=f"{host.url}/v1", api_key="unused", max_retries=0, timeout=120)


def complete(host: HostProcess, model: str = "tiny-elixir", max_tokens: int = 24) -> tuple[str, int]:
    answer = client(host).completions.create(model=model, prompt=PROMPT, max_tokens=max_tokens, temperature=0)
    assert answer.usage is not None
    return answer.choices[0].text, answer.usage.completion_tokens


def activate(host: HostProcess, adapter: str, token: str | None = TOKEN) -> tuple[int, Any]:
    return post_json(f"{host.url}/api/adapters/activate", {"adapter": adapter}, token=token, timeout=300)


def rollback(host: HostProcess) -> tuple[int, Any]:
    return post_json(f"{host.url}/api/adapters/rollback", b"", token=TOKEN, timeout=300)


def adapters(host: HostProcess) -> dict[str, Any]:
    status, listing = get_json(f"{host.url}/api/adapters", timeout=60)
    assert status == 200, listing
    return listing


def test_activation_mid_stream_model_ids_and_rollback(host: HostProcess) -> None:
    base, _ = complete(host)
    assert activate(host, "run1/stage1", token=None)[0] == 401
    assert activate(host, "run1/stage1", token="wrong")[0] == 401
    assert adapters(host)["active"] == ""

    status, answer = activate(host, "run1/stage1")
    assert status == 200, answer
    assert answer["active"] == "run1/stage1" and answer["smoke_test"]["generated"]
    first_short, _ = complete(host)
    assert first_short != base
    solo, solo_tokens = complete(host, max_tokens=LONG)
    assert solo_tokens == LONG

    # A stream that starts on stage1 keeps it while stage2 is activated.
    stream = client(host).completions.create(
        model="tiny-elixir", prompt=PROMPT, max_tokens=LONG, temperature=0, stream=True
    )
    chunks = iter(stream)
    first = next(chunks)
    status, answer = activate(host, "tiny-elixir:run1/stage2")
    assert status == 200, answer
    assert answer["active"] == "run1/stage2" and answer["previous"] == "run1/stage1"
    rest = list(chunks)
    streamed = first.choices[0].text + "".join(c.choices[0].text for c in rest if c.choices)
    assert rest[-1].choices[0].finish_reason is not None
    assert streamed == solo

    # The next request uses the new adapter; both adapters are model ids.
    after, _ = complete(host)
    assert after not in (first_short, base)
    assert complete(host, "tiny-elixir:run1/stage2")[0] == after
    assert complete(host, "tiny-elixir:run1/stage1")[0] == first_short
    ids = [m.id for m in client(host).models.list().data]
    served = ["tiny-elixir", "tiny-elixir:run1/stage1", "tiny-elixir:run1/stage2"]
    assert ids == served + [f"{id}+rag" for id in served]
    status, error = post_json(
        f"{host.url}/v1/completions", {"model": "tiny-elixir:run1/stage9", "prompt": "x", "max_tokens": 2}
    )
    assert status == 404
    assert "tiny-elixir:run1/stage1" in error["error"]["message"] and error["error"]["code"] == "model_not_found"

    # A refused adapter leaves the live one serving.
    status, answer = activate(host, "run1/missing")
    assert status == 404 and "run1/stage1" in answer["error"]["message"]
    assert complete(host)[0] == after

    status, answer = rollback(host)
    assert status == 200, answer
    assert answer["active"] == "run1/stage1" and answer["previous"] == "run1/stage2"
    assert complete(host)[0] == first_short
    listing = adapters(host)
    assert listing["active"] == "run1/stage1" and listing["previous"] == "run1/stage2"
    by_name = {a["name"]: a for a in listing["adapters"]}
    assert by_name["run1/stage1"]["id"] == "tiny-elixir:run1/stage1"
    assert by_name["run1/stage1"]["active"] and by_name["run1/stage2"]["previous"]
    assert by_name["run1/stage1"]["rank"] == 4 and by_name["run1/stage1"]["stage"] == 1


def wait_for_new_worker(host: HostProcess, old_pid: int, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        health = host.health() or {}
        worker = health.get("worker") or {}
        if worker.get("os_pid") not in (None, old_pid) and worker.get("status") == "ready":
            return
        time.sleep(0.2)  # polling a deadline, not synchronising on a guess
    pytest.fail(f"no new ready worker within {timeout}s:\n{host.log_tail()}")


def test_the_active_adapter_survives_kill_9_and_a_host_restart(host: HostProcess, data_dir: Path) -> None:
    status, answer = activate(host, "run1/stage2")
    assert status == 200, answer
    expected, _ = complete(host, max_tokens=64)

    old_pid = host.health()["worker"]["os_pid"]  # type: ignore[index]
    os.kill(old_pid, signal.SIGKILL)
    wait_for_new_worker(host, old_pid)
    assert adapters(host)["active"] == "run1/stage2"
    assert complete(host, max_tokens=64)[0] == expected

    host.stop()
    host.start()
    assert adapters(host)["active"] == "run1/stage2"
    assert complete(host, max_tokens=64)[0] == expected
    ids = [m.id for m in client(host).models.list().data]
    assert "tiny-elixir:run1/stage2" in ids
