"""End to end: the official `openai` client against the real host (yaws → Port → worker).

Greedy output through the whole system must equal plain transformers generation
in this process with the same model and prompt.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import time
from typing import Any

import pytest
import torch
from openai import OpenAI
from transformers import AutoModelForCausalLM, AutoTokenizer

from python_worker import fim
from tests.host_process import TINY_MODEL, HostProcess, get_json, post_json

MAX_TOKENS = 24


@functools.cache
def reference() -> tuple[Any, Any]:
    tokenizer = AutoTokenizer.from_pretrained(TINY_MODEL)
    model = AutoModelForCausalLM.from_pretrained(TINY_MODEL)
    model.eval()
    return tokenizer, model


def direct_greedy(prompt_text: str, max_tokens: int = MAX_TOKENS) -> str:
    tokenizer, model = reference()
    inputs = tokenizer(prompt_text, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        output = model.generate(
            **inputs, do_sample=False, max_new_tokens=max_tokens, pad_token_id=tokenizer.eos_token_id
        )
    new_tokens = output[0][inputs["input_ids"].shape[1] :]
    return tokenizer.decode(new_tokens, skip_special_tokens=True)


def client(host: HostProcess) -> OpenAI:
    return OpenAI(base_url=f"{host.url}/v1", api_key="unused", max_retries=0, timeout=60)


def post(host: HostProcess, path: str, body: bytes) -> tuple[int, Any]:
    return post_json(f"{host.url}{path}", body)


def test_health_and_models(host: HostProcess) -> None:
    status, health = get_json(f"{host.url}/health")
    assert status == 200
    assert health["worker"]["status"] == "ready"
    assert health["model"]["id"] == str(TINY_MODEL)
    assert health["model"]["context_length"] > 0

    # The served name (SERVED_MODEL_NAME, by default the directory's name), not the path.
    models = client(host).models.list()
    assert [m.id for m in models.data] == ["tiny-elixir", "tiny-elixir+rag"]
    assert client(host).models.retrieve("tiny-elixir").id == "tiny-elixir"


def test_streamed_chat_equals_direct_generation(host: HostProcess) -> None:
    messages = [{"role": "user", "content": "Write a function that reverses a list in Elixir."}]
    stream = client(host).chat.completions.create(
        model="tiny-elixir", messages=messages, stream=True, temperature=0, max_tokens=MAX_TOKENS
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    # Streamed for real: more than one content chunk arrived.
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 1

    tokenizer, _ = reference()
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text == direct_greedy(prompt)


def test_streamed_fim_completion_equals_direct_generation(host: HostProcess) -> None:
    prefix = "defmodule Math do\n  def add(a, b) do\n    "
    suffix = "\n  end\nend\n"
    stream = client(host).completions.create(
        model=str(TINY_MODEL), prompt=prefix, suffix=suffix, stream=True, temperature=0, max_tokens=MAX_TOKENS
    )
    chunks = list(stream)
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == direct_greedy(fim.style("qwen").psm(prefix, suffix))
    # Asked for by its path, answered under its served name.
    assert {c.model for c in chunks} == {"tiny-elixir"}


def test_non_streamed_completion_has_usage(host: HostProcess) -> None:
    result = client(host).completions.create(
        model="tiny-elixir", prompt="defmodule Foo do", temperature=0, max_tokens=5
    )
    assert result.usage.completion_tokens <= 5
    assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.completion_tokens
    assert result.choices[0].text == direct_greedy("defmodule Foo do", 5)


def test_top_p_zero_is_greedy(host: HostProcess) -> None:
    # OpenAI accepts top_p 0; a nucleus of zero mass keeps only the top token,
    # so the answer is the greedy one even at the default temperature (1).
    result = client(host).completions.create(model="tiny-elixir", prompt="defmodule Foo do", top_p=0, max_tokens=8)
    assert result.choices[0].text == direct_greedy("defmodule Foo do", 8)


@pytest.mark.parametrize(
    ("path", "body", "status", "needle"),
    [
        ("/v1/chat/completions", b"{not json", 400, "invalid JSON"),
        ("/v1/chat/completions", b'{"model": "tiny-elixir"}', 400, "messages"),
        ("/v1/completions", b'{"max_tokens": 3}', 400, "prompt"),
        ("/v1/completions", b'{"prompt": "x", "temperature": "hot"}', 400, "temperature"),
        ("/v1/completions", b'{"prompt": "x", "model": "gpt-9"}', 404, 'available models: "tiny-elixir"'),
        ("/v1/completions", b'{"prompt": "x", "n": 3}', 400, "n=1"),
    ],
)
def test_bad_requests_get_openai_errors(host: HostProcess, path: str, body: bytes, status: int, needle: str) -> None:
    got_status, got = post(host, path, body)
    assert got_status == status
    assert needle in got["error"]["message"]
    assert set(got["error"]) == {"message", "type", "param", "code"}


@pytest.mark.parametrize("stream", [False, True])
def test_prompt_over_the_context_is_a_400(host: HostProcess, stream: bool) -> None:
    _, health = get_json(f"{host.url}/health")
    too_long = "defmodule A do end\n" * health["model"]["context_length"]
    body = json.dumps({"prompt": too_long, "max_tokens": 4, "stream": stream}).encode()
    status, got = post(host, "/v1/completions", body)
    assert status == 400
    assert got["error"]["code"] == "context_length_exceeded"


def test_a_whole_file_fim_request_over_the_context_is_answered(host: HostProcess) -> None:
    """An editor sends the whole file around the cursor: the prompt is cut to the
    code nearest the hole, leaving room for max_tokens, not refused."""
    _, health = get_json(f"{host.url}/health")
    context = health["model"]["context_length"]
    prefix = "defmodule A do end\n" * context + "def f(x) do\n  "
    body = json.dumps({"prompt": prefix, "suffix": "\nend\n" * 50, "max_tokens": 4, "temperature": 0}).encode()
    status, got = post(host, "/v1/completions", body)
    assert status == 200, got
    usage = got["usage"]
    assert context - 4 - 8 <= usage["prompt_tokens"] <= context - 4
    assert 1 <= usage["completion_tokens"] <= 4 and isinstance(got["choices"][0]["text"], str)


def test_503_while_the_worker_is_down_then_recovery(host: HostProcess) -> None:
    _, health = get_json(f"{host.url}/health")
    os.kill(health["worker"]["os_pid"], signal.SIGKILL)

    deadline = time.monotonic() + 5
    while get_json(f"{host.url}/health")[1]["worker"]["status"] == "ready":
        assert time.monotonic() < deadline, "the host never noticed the worker died"
        time.sleep(0.02)

    status, got = post(host, "/v1/completions", b'{"prompt": "x", "max_tokens": 2}')
    assert status == 503
    assert got["error"]["code"] == "worker_unavailable"

    host.wait_ready(timeout=60)
    status, _ = post(host, "/v1/completions", b'{"prompt": "x", "max_tokens": 2}')
    assert status == 200
