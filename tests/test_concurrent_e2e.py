"""Concurrent streams through the real host share the worker's batch: each gets
exactly its own text, and a full queue answers 429 with Retry-After."""

from __future__ import annotations

import http.client
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.host_process import HostProcess

PROMPTS = [
    f"defmodule Concurrent{i} do\n" + "  @moduledoc false\n" * (i % 4) + f"  def f{i}(x) do\n" for i in range(20)
]
MAX_TOKENS = 48


def completion_request(port: int, prompt: str, max_tokens: int) -> http.client.HTTPConnection:
    body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    connection.request("POST", "/v1/completions", json.dumps(body), {"content-type": "application/json"})
    return connection


def stream_text(port: int, prompt: str, max_tokens: int = MAX_TOKENS) -> str:
    connection = completion_request(port, prompt, max_tokens)
    try:
        response = connection.getresponse()
        assert response.status == 200, response.read()
        text = []
        for line in response:
            if line.startswith(b"data: ") and not line.startswith(b"data: [DONE]"):
                event = json.loads(line[6:])
                text.extend(choice["text"] for choice in event["choices"])
        return "".join(text)
    finally:
        connection.close()


def test_twenty_concurrent_streams_each_get_their_own_text(host: HostProcess) -> None:
    solo = [stream_text(host.port, prompt) for prompt in PROMPTS]
    assert len(set(solo)) > 10  # distinct prompts give distinct texts
    with ThreadPoolExecutor(len(PROMPTS)) as pool:
        together = list(pool.map(lambda p: stream_text(host.port, p), PROMPTS))
    for prompt, alone, concurrent in zip(PROMPTS, solo, together, strict=True):
        assert concurrent == alone, prompt


@pytest.fixture(scope="module")
def one_slot_host(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A host whose worker decodes one request at a time and queues none."""
    data_dir: Path = tmp_path_factory.mktemp("one-slot")
    env = {"MAX_BATCH_SIZE": "1", "MAX_WAITING_REQUESTS": "0"}
    with HostProcess(data_dir, env) as running:
        yield running


def test_a_full_queue_answers_429_and_a_disconnect_frees_the_slot(one_slot_host: HostProcess) -> None:
    port = one_slot_host.port
    long = completion_request(port, PROMPTS[0], 1900)
    response = long.getresponse()
    assert response.status == 200
    assert response.readline().startswith(b"data: ")  # the stream holds the only batch slot

    refused = completion_request(port, PROMPTS[1], 4)
    answer = refused.getresponse()
    body = json.loads(answer.read())
    refused.close()
    assert answer.status == 429, body
    assert answer.getheader("retry-after") == "1"
    assert body["error"]["code"] == "rate_limit_exceeded"
    assert "MAX_WAITING_REQUESTS" in body["error"]["message"]

    # The client goes away; its slot frees long before its 1,900 tokens would end.
    long.close()
    started = time.monotonic()
    while True:
        probe = completion_request(port, PROMPTS[1], 4)
        answer = probe.getresponse()
        body = answer.read()  # to the end: an unread stream would hold the slot itself
        probe.close()
        if answer.status == 200:
            break
        assert answer.status == 429, body
        assert time.monotonic() - started < 3.0, "the abandoned stream kept its batch slot"
    assert b"data: [DONE]" in body
    assert stream_text(port, PROMPTS[2], 4)
