"""End to end: POST /v1/embeddings on the real host (yaws → Port → worker → all-MiniLM-L6-v2)."""

from __future__ import annotations

import base64
import math
import struct
from typing import Any

import pytest
from openai import BadRequestError, OpenAI

from tests.host_process import HostProcess, post_json

MODEL = "all-MiniLM-L6-v2"
TEXTS = [
    "A GenServer keeps state between calls.",
    "Supervisors restart crashed processes.",
    "Pattern matching on tuples in function heads.",
]


def embeddings(host: HostProcess, body: dict[str, Any]) -> tuple[int, Any]:
    return post_json(f"{host.url}/v1/embeddings", body, timeout=300)


def check_shape(answer: Any, count: int) -> list[list[float]]:
    """Exactly OpenAI's response shape, in index order; returns the float vectors."""
    assert set(answer) == {"object", "data", "model", "usage"}
    assert answer["object"] == "list" and answer["model"] == MODEL
    assert set(answer["usage"]) == {"prompt_tokens", "total_tokens"}
    assert answer["usage"]["prompt_tokens"] == answer["usage"]["total_tokens"] > count
    assert [item["index"] for item in answer["data"]] == list(range(count))
    for item in answer["data"]:
        assert set(item) == {"object", "index", "embedding"} and item["object"] == "embedding"
    return [item["embedding"] for item in answer["data"]]


def decode_base64(encoded: str) -> list[float]:
    raw = base64.b64decode(encoded, validate=True)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def test_a_single_string_gives_one_unit_vector(host: HostProcess) -> None:
    status, answer = embeddings(host, {"model": MODEL, "input": TEXTS[0]})
    assert status == 200, answer
    (vector,) = check_shape(answer, 1)
    assert len(vector) == 384
    assert math.isclose(math.sqrt(sum(x * x for x in vector)), 1.0, abs_tol=1e-5)


def test_a_list_keeps_its_order_and_base64_decodes_to_the_same_floats(host: HostProcess) -> None:
    status, floats = embeddings(host, {"model": MODEL, "input": TEXTS, "encoding_format": "float"})
    assert status == 200, floats
    vectors = check_shape(floats, len(TEXTS))
    (first,) = check_shape(embeddings(host, {"model": MODEL, "input": TEXTS[0]})[1], 1)
    # Index 0 is the first text's vector, not another's.
    assert max(abs(a - b) for a, b in zip(vectors[0], first, strict=True)) < 1e-5
    assert max(abs(a - b) for a, b in zip(vectors[1], first, strict=True)) > 1e-2

    status, packed = embeddings(host, {"model": MODEL, "input": TEXTS, "encoding_format": "base64"})
    assert status == 200, packed
    decoded = [decode_base64(item["embedding"]) for item in packed["data"]]
    assert [item["index"] for item in packed["data"]] == [0, 1, 2]
    for got, want in zip(decoded, vectors, strict=True):
        assert len(got) == 384 and max(abs(a - b) for a, b in zip(got, want, strict=True)) < 1e-6


def test_the_official_client_reads_both_encodings(host: HostProcess) -> None:
    client = OpenAI(base_url=f"{host.url}/v1", api_key="unused", max_retries=0, timeout=300)
    floats = client.embeddings.create(model=MODEL, input=TEXTS, encoding_format="float")
    packed = client.embeddings.create(model=MODEL, input=TEXTS)  # the client asks for base64 by default
    assert [d.index for d in floats.data] == [0, 1, 2] and floats.model == MODEL
    for a, b in zip(floats.data, packed.data, strict=True):
        assert max(abs(x - y) for x, y in zip(a.embedding, b.embedding, strict=True)) < 1e-6
    assert floats.usage.prompt_tokens == packed.usage.prompt_tokens > 0


@pytest.mark.parametrize(
    ("body", "param", "fragment"),
    [
        ({"model": MODEL}, "input", "input is required"),
        ({"model": MODEL, "input": []}, "input", "empty list"),
        ({"model": MODEL, "input": ["ok", ""]}, "input", "input[1]"),
        ({"model": MODEL, "input": [1, 2, 3]}, "input", "input[0] must be a string"),
        ({"model": MODEL, "input": {"text": "x"}}, "input", "a string or a list"),
        ({"model": MODEL, "input": ["x"] * 2049}, "input", "at most 2048"),
        ({"model": MODEL, "input": "x", "encoding_format": "int8"}, "encoding_format", "float"),
        ({"model": MODEL, "input": "x", "dimensions": 128}, "dimensions", "384"),
    ],
)
def test_bad_parameters_are_openai_shaped_400s(
    host: HostProcess, body: dict[str, Any], param: str, fragment: str
) -> None:
    status, answer = embeddings(host, body)
    assert status == 400, answer
    assert answer["error"]["type"] == "invalid_request_error" and answer["error"]["param"] == param
    assert fragment in answer["error"]["message"]


def test_another_model_is_404_and_the_client_raises_on_400(host: HostProcess) -> None:
    status, answer = embeddings(host, {"model": "/etc", "input": "x"})
    assert status == 404 and answer["error"]["param"] == "model", answer
    client = OpenAI(base_url=f"{host.url}/v1", api_key="unused", max_retries=0, timeout=60)
    with pytest.raises(BadRequestError):
        client.embeddings.create(model=MODEL, input="")
