"""The memory RPCs through the real servicer: `python -m python_worker serve` with the tiny model,
the real embedder and an embedded Qdrant under a temporary DATA_DIR.

One worker serves the module (ingest, search, generate with retrieval, stats,
delete, errors); the last test stops it and starts another on the same
DATA_DIR, which finds the collection (the first released the store on exit).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import grpc
import pytest

from python_worker.proto import worker_pb2 as pb
from python_worker.proto import worker_pb2_grpc
from python_worker.tests.procs import stop, worker_env
from python_worker.tests.test_grpc import GrpcWorker, rpc_error, wait_serving

FACT_USER = "Where do we keep the signing keys for the Nerves firmware?"
FACT_ANSWER = "The firmware signing keys live in the hardware vault in the Porto office, drawer 7."
PARAPHRASE = "In which office and drawer are the firmware signing keys stored?"
UNRELATED = "Give me a recipe for chocolate cake with flour and sugar."
CONTEXT_LENGTH = 2048  # the tiny model's


class Session:
    def __init__(self, data_dir: Path, model: str) -> None:
        self.data_dir = data_dir
        self.worker = GrpcWorker(["serve"], worker_env(MODEL=model, DATA_DIR=str(data_dir)))
        asyncio.run(wait_serving(self.worker.target))

    def call(self, method: str, request: object) -> object:
        async def go() -> object:
            async with grpc.aio.insecure_channel(self.worker.target) as channel:
                call = getattr(worker_pb2_grpc.WorkerStub(channel), method)(request, timeout=180)
                if hasattr(call, "__aiter__"):
                    return [message async for message in call]
                return await call

        return asyncio.run(go())

    def error(self, method: str, request: object) -> grpc.aio.AioRpcError:
        return asyncio.run(rpc_error(self.worker.target, method, request))

    def stop(self) -> None:
        assert stop(self.worker.proc, timeout=30) == 0, self.worker.log.text()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rag-data")


@pytest.fixture(scope="module")
def session(data_dir: Path, tiny_model: Path):  # type: ignore[no-untyped-def]
    started = Session(data_dir, str(tiny_model))
    yield started
    if started.worker.proc.poll() is None:
        started.stop()


@pytest.fixture(scope="module")
def log_file(data_dir: Path) -> Path:
    lines = [
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": "What does Enum.map do?"},
                    {"role": "assistant", "content": "It applies a function to each element and returns a list."},
                ]
            }
        ),
        "{broken",
        json.dumps({"type": "user", "message": {"content": FACT_USER}}),
        json.dumps(
            {
                "type": "assistant",
                "message": {"content": [{"type": "tool_use", "id": "t", "name": "Read", "input": {}}]},
            }
        ),
        json.dumps({"type": "assistant", "message": {"content": [{"type": "text", "text": FACT_ANSWER}]}}),
        "42",
    ]
    path = data_dir / "logs" / "session.jsonl"
    path.parent.mkdir()
    path.write_text("\n".join(lines) + "\n")
    return path


def events(session: Session, paths: list[str], job_id: str) -> list[pb.JobEvent]:
    return session.call("Ingest", pb.IngestRequest(job_id=job_id, paths=paths))  # type: ignore[return-value]


def test_ingest_streams_progress_skipped_lines_and_totals_and_a_second_run_adds_nothing(
    session: Session, log_file: Path
) -> None:
    first = events(session, [str(log_file.parent)], "ingest-1")
    kinds = [pb.JobEvent.Kind.Name(e.kind) for e in first]
    assert kinds[0] == "PROGRESS" and kinds[-1] == "COMPLETED" and all(e.job_id == "ingest-1" for e in first)
    logged = [e.message for e in first if e.kind == pb.JobEvent.LOG]
    assert any(f"{log_file}:2:" in m and "not JSON" in m for m in logged), logged
    assert any(f"{log_file}:6:" in m for m in logged), logged
    done = first[-1].metrics
    assert (done["files"], done["chunks"], done["added"], done["existing"], done["skipped_lines"]) == (1, 2, 2, 0, 2)
    again = events(session, [str(log_file)], "ingest-2")[-1].metrics
    assert (again["added"], again["existing"]) == (0, 2)


def test_a_paraphrase_finds_the_fact_first_in_both_modes_and_an_unrelated_query_nothing(session: Session) -> None:
    for mode in ("dense", "hybrid"):
        hits = session.call("SearchMemory", pb.SearchMemoryRequest(query=PARAPHRASE, mode=mode)).hits  # type: ignore[attr-defined]
        assert hits and FACT_ANSWER in hits[0].text and hits[0].source.endswith("session.jsonl:3"), (mode, hits)
        assert hits[0].kind == "conversation" and hits[0].score >= 0.3
        assert session.call("SearchMemory", pb.SearchMemoryRequest(query=UNRELATED, mode=mode)).hits == []  # type: ignore[attr-defined]


def test_generate_with_retrieval_returns_its_sources_on_the_first_message_only(session: Session) -> None:
    request = pb.GenerateRequest(
        chat=pb.ChatPrompt(messages=[pb.ChatMessage(role="user", content=PARAPHRASE)]),
        params=pb.SamplingParams(max_tokens=4),
        retrieval=pb.Retrieval(),
    )
    responses = session.call("Generate", request)
    assert [s.source.endswith("session.jsonl:3") for s in responses[0].sources] == [True]  # type: ignore[index]
    assert all(not r.sources for r in responses[1:])  # type: ignore[index]
    plain = session.call("Generate", pb.GenerateRequest(chat=request.chat, params=request.params))
    # The hit went into the prompt: more prompt tokens than the same chat without retrieval.
    assert responses[-1].usage.prompt_tokens > plain[-1].usage.prompt_tokens + 15  # type: ignore[index]
    assert all(not r.sources for r in plain)  # type: ignore[attr-defined]
    unrelated = pb.GenerateRequest(prompt=UNRELATED, params=pb.SamplingParams(max_tokens=2), retrieval=pb.Retrieval())
    assert list(session.call("Generate", unrelated)[0].sources) == []  # type: ignore[index]


def test_generate_with_retrieval_keeps_prompt_and_max_tokens_within_the_context(
    session: Session, tiny_model: Path
) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model))
    max_tokens = 4
    # A chat that leaves about 100 tokens of the context free: the best hit with its source
    # line takes about 120, so it is cut to fit and the second is dropped.
    filler = " elixir" * 8
    while len(tokenizer(PARAPHRASE + filler)["input_ids"]) < CONTEXT_LENGTH - max_tokens - 115:
        filler += " elixir" * 8
    chat = pb.ChatPrompt(messages=[pb.ChatMessage(role="user", content=PARAPHRASE + filler)])
    params = pb.SamplingParams(max_tokens=max_tokens)
    plain = session.call("Generate", pb.GenerateRequest(chat=chat, params=params))[-1].usage.prompt_tokens  # type: ignore[index]
    assert plain + max_tokens + 80 < CONTEXT_LENGTH
    responses = session.call(
        "Generate", pb.GenerateRequest(chat=chat, params=params, retrieval=pb.Retrieval(min_score=-1.0))
    )
    usage = responses[-1].usage  # type: ignore[index]
    assert usage.prompt_tokens + max_tokens <= CONTEXT_LENGTH
    assert usage.completion_tokens == max_tokens  # nothing was cut short by the context
    sources = list(responses[0].sources)  # type: ignore[index]
    # Both stored exchanges match (min_score -1) but only part of one fits: it was cut.
    assert len(sources) == 1 and sources[0].text.endswith("…"), sources
    assert usage.prompt_tokens > plain


def test_stats_and_delete_by_source(session: Session, log_file: Path) -> None:
    stats = session.call("MemoryStats", pb.MemoryStatsRequest())
    by_name = {c.name: c for c in stats.collections}  # type: ignore[attr-defined]
    assert (by_name["conversations"].points, by_name["conversations"].dimensions) == (2, 384)
    assert by_name["docs"].points == 0
    assert stats.location == str(session.data_dir / "qdrant") and stats.embed_model == "all-MiniLM-L6-v2"  # type: ignore[attr-defined]
    upserted = session.call(
        "UpsertDocuments",
        pb.UpsertDocumentsRequest(
            collection="docs",
            documents=[
                pb.MemoryDocument(text="Mix tasks live in lib/mix/tasks.", source="notes.md#mix", kind="markdown")
            ],
        ),
    )
    assert (upserted.added, upserted.existing) == (1, 0)  # type: ignore[attr-defined]
    deleted = session.call("DeleteDocuments", pb.DeleteDocumentsRequest(collection="docs", source="notes.md#mix"))
    assert deleted.deleted == 1  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("method", "request_", "message"),
    [
        ("SearchMemory", pb.SearchMemoryRequest(query=""), "query must not be empty"),
        ("SearchMemory", pb.SearchMemoryRequest(query="q", top_k=1000), "top_k must be in 0..100"),
        ("SearchMemory", pb.SearchMemoryRequest(query="q", mode="bm25"), "mode must be one of dense, hybrid"),
        ("SearchMemory", pb.SearchMemoryRequest(query="q", collection="../etc"), "is not a collection name"),
        ("SearchMemory", pb.SearchMemoryRequest(query="q", filters=[pb.MemoryFilter(key="kind")]), "filters[0].value"),
        ("UpsertDocuments", pb.UpsertDocumentsRequest(), "documents: at least one document"),
        ("DeleteDocuments", pb.DeleteDocumentsRequest(), "source must not be empty"),
        ("Ingest", pb.IngestRequest(job_id="bad", paths=["/no/such/dir"]), "paths[0]: no such file or directory"),
        (
            "Generate",
            pb.GenerateRequest(fim=pb.FimPrompt(prefix="a"), retrieval=pb.Retrieval()),
            "retrieval: not supported for fim",
        ),
        (
            "Generate",
            pb.GenerateRequest(prompt="x", retrieval=pb.Retrieval(mode="nope")),
            "retrieval: mode must be one of",
        ),
    ],
)
def test_bad_requests_are_invalid_argument_saying_what_was_wrong(
    session: Session, method: str, request_: object, message: str
) -> None:
    exc = session.error(method, request_)
    assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT and message in exc.details(), exc.details()


def test_a_restarted_worker_finds_the_collection(session: Session, data_dir: Path) -> None:
    session.stop()  # SIGTERM: the worker closes the store, releasing the embedded store's lock
    restarted = Session(data_dir, "none")
    try:
        # Stats need no embedder, so this restart stays quick; search after a reopen is test_rag_store's.
        stats = restarted.call("MemoryStats", pb.MemoryStatsRequest())
        assert {c.name: c.points for c in stats.collections}["conversations"] == 2  # type: ignore[attr-defined]
    finally:
        restarted.stop()
