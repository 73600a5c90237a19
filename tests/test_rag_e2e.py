"""End to end: the RAG memory on the real host (yaws → Port → worker → embedded Qdrant).

    .venv/bin/python -m pytest tests/test_rag_e2e.py -q

Logs holding one unique fact (an OpenAI-style chat JSONL and a Claude Code
session, each with a malformed line) are ingested with `mix rag.ingest`
through the running host; `mix rag.search` finds the fact for a paraphrase,
the `+rag` model lists it in `sources` (plain and streamed), a finished chat
is remembered, and the store outlives the host: a `mix rag.search` with no
host up runs in-process on the same data directory, and a restarted host
serves the same collection. The tests run in file order on one host.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.host_process import ROOT, TINY_MODEL, HostProcess, get_json, post_json

FACT = "The deployment cluster is codenamed Blue Pelican and runs in the Oslo data centre."
PARAPHRASE = "What name was given to the cluster we deploy to?"
UNRELATED = "best recipe for chocolate chip cookies"
MODEL = "tiny-elixir"


def write_logs(directory: Path) -> tuple[Path, Path]:
    """An OpenAI-style chat log (the fact on line 1) and a Claude Code session, each with one bad line."""
    directory.mkdir(parents=True)
    chat = directory / "chat.jsonl"
    rows = [
        {
            "messages": [
                {"role": "user", "content": "What is the codename of our deployment cluster?"},
                {"role": "assistant", "content": FACT},
            ]
        },
        "this line is not JSON",
        {
            "messages": [
                {"role": "user", "content": "How do I start iex?"},
                {"role": "assistant", "content": "Run iex -S mix."},
            ]
        },
    ]
    chat.write_text("\n".join(row if isinstance(row, str) else json.dumps(row) for row in rows) + "\n")
    claude = directory / "session.jsonl"
    events = [
        {"type": "user", "message": {"role": "user", "content": "Which OTP behaviour fits a job queue?"}},
        {
            "type": "assistant",
            "message": {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "t1", "name": "Read", "input": {"path": "queue.ex"}},
                    {"type": "text", "text": "A GenServer that keeps the queue in its state."},
                ],
            },
        },
        "[1, 2",
    ]
    claude.write_text("\n".join(e if isinstance(e, str) else json.dumps(e) for e in events) + "\n")
    return chat, claude


@pytest.fixture(scope="module")
def rag_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostProcess]:
    if not (TINY_MODEL / "config.json").exists():
        pytest.fail(f"the tiny model is missing at {TINY_MODEL}; run `make model`")
    with HostProcess(tmp_path_factory.mktemp("rag-host"), env={"RAG_REMEMBER": "true"}) as host:
        yield host


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_logs(tmp_path_factory.mktemp("rag-logs") / "logs")


def points(host: HostProcess, collection: str = "conversations") -> int:
    status, stats = get_json(f"{host.url}/api/rag/stats", timeout=120)
    assert status == 200, stats
    return next((c["points"] for c in stats["collections"] if c["name"] == collection), 0)


def search(host: HostProcess, body: dict[str, Any]) -> list[dict[str, Any]]:
    status, answer = post_json(f"{host.url}/api/rag/search", body, timeout=120)
    assert status == 200, answer
    return answer["hits"]


def test_ingest_counts_skips_bad_lines_and_adds_nothing_twice(rag_host: HostProcess, logs: tuple[Path, Path]) -> None:
    chat, claude = logs
    result = rag_host.mix("rag.ingest", str(chat.parent))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"on the host at {rag_host.url}" in result.stdout, result.stdout
    assert "  files: 2\n" in result.stdout and "  skipped_lines: 2\n" in result.stdout, result.stdout
    assert f"skipped {chat}:2:" in result.stdout and f"skipped {claude}:3:" in result.stdout, result.stdout
    stored = points(rag_host)
    assert stored == 3  # two chat exchanges, one Claude Code exchange (the tool call dropped)

    # Relative paths are expanded by the client; the same texts add no points.
    relative = os.path.relpath(chat, ROOT / "elixir")  # Mix tasks run in elixir/
    again = rag_host.mix("rag.ingest", "--collection", "conversations", relative)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "  added: 0\n" in again.stdout and "  existing: 2\n" in again.stdout, again.stdout
    assert points(rag_host) == stored


def test_search_finds_the_fact_for_a_paraphrase_and_nothing_for_an_unrelated_query(
    rag_host: HostProcess, logs: tuple[Path, Path]
) -> None:
    chat, _ = logs
    result = rag_host.mix("rag.search", PARAPHRASE, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    hits = json.loads(lines[0])["hits"]
    assert hits and set(hits[0]) == {"source", "score", "text"}
    assert hits[0]["source"] == f"{chat}:1" and FACT in hits[0]["text"], hits
    assert hits[0]["score"] >= 0.3

    assert search(rag_host, {"query": UNRELATED, "min_score": 0.3}) == []
    status, error = post_json(f"{rag_host.url}/api/rag/search", {"query": "x", "top_k": 0})
    assert status == 400 and error["error"]["param"] == "top_k"


def chat_body(stream: bool) -> dict[str, Any]:
    return {
        "model": f"{MODEL}+rag",
        "messages": [{"role": "user", "content": PARAPHRASE}],
        "max_tokens": 4,
        "temperature": 0,
        "stream": stream,
    }


def sse_data(raw: bytes) -> list[Any]:
    events = [line[len("data: ") :] for line in raw.decode().splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    return [json.loads(event) for event in events[:-1]]


def test_rag_model_answers_with_sources_plain_and_streamed(rag_host: HostProcess, logs: tuple[Path, Path]) -> None:
    chat, _ = logs
    status, models = get_json(f"{rag_host.url}/v1/models")
    assert status == 200 and f"{MODEL}+rag" in [m["id"] for m in models["data"]]

    status, answer = post_json(f"{rag_host.url}/v1/chat/completions", chat_body(stream=False), timeout=120)
    assert status == 200, answer
    assert answer["model"] == f"{MODEL}+rag"
    assert f"{chat}:1" in [s["source"] for s in answer["sources"]], answer["sources"]
    assert all(set(s) == {"source", "score", "text"} and s["score"] >= 0.3 for s in answer["sources"])

    request = urllib.request.Request(
        f"{rag_host.url}/v1/chat/completions",
        data=json.dumps(chat_body(stream=True)).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        chunks = sse_data(response.read())
    final = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert len(final) == 1 and f"{chat}:1" in [s["source"] for s in final[0]["sources"]], chunks
    assert all("sources" not in c for c in chunks if c is not final[0])

    # A plain model id answers without sources; an unknown +rag id is an unknown model.
    plain = {**chat_body(stream=False), "model": MODEL}
    status, answer = post_json(f"{rag_host.url}/v1/chat/completions", plain, timeout=120)
    assert status == 200 and "sources" not in answer
    status, error = post_json(f"{rag_host.url}/v1/chat/completions", {**plain, "model": "gpt-9+rag"})
    assert status == 404 and error["error"]["code"] == "model_not_found"
    assert f'"{MODEL}+rag"' in error["error"]["message"]


def wait_for_hits(host: HostProcess, body: dict[str, Any], timeout: float = 60.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        hits = search(host, body)
        if hits:
            return hits
        assert time.monotonic() < deadline, f"no hit for {body} in {timeout} s"
        time.sleep(0.2)


def test_a_finished_chat_is_remembered(rag_host: HostProcess) -> None:
    question = "Remember that the staging database is called marmot-7."
    body = {"model": MODEL, "messages": [{"role": "user", "content": question}], "max_tokens": 3, "temperature": 0}
    status, answer = post_json(f"{rag_host.url}/v1/chat/completions", body, timeout=120)
    assert status == 200, answer
    source = f"conversation:{answer['id']}"
    hits = wait_for_hits(rag_host, {"query": "staging database name", "min_score": -1, "filters": {"source": source}})
    assert hits[0]["source"] == source and hits[0]["text"].startswith(f"User: {question}\n\nAssistant:")


def test_documents_api_upserts_and_deletes_with_the_admin_token(rag_host: HostProcess) -> None:
    token = (rag_host.data_dir / "admin_token").read_text().strip()
    url = f"{rag_host.url}/api/rag/documents"
    doc = {"text": "Mnesia tables of type disc_copies live in RAM and on disk.", "source": "notes.md#mnesia"}
    body = {"collection": "docs", "documents": [doc]}
    status, error = post_json(url, body)
    assert status == 401, error
    status, added = post_json(url, body, token=token)
    assert (status, added) == (200, {"added": 1, "existing": 0})
    status, error = post_json(url, {"collection": "docs", "documents": [{"text": "t"}]}, token=token)
    assert status == 400 and "documents[0]: source is required" in error["error"]["message"]

    query = {"query": "where do disc_copies tables live", "collection": "docs"}
    assert [hit["source"] for hit in search(rag_host, query)] == ["notes.md#mnesia"]
    request = urllib.request.Request(
        f"{url}?collection=docs&source=notes.md%23mnesia",
        method="DELETE",
        headers={"authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        assert json.loads(response.read()) == {"deleted": 1}
    assert search(rag_host, query) == []


def test_the_store_outlives_the_host(rag_host: HostProcess) -> None:
    before = points(rag_host)
    rag_host.stop()

    # No host up: the task runs in-process on the same data directory.
    result = rag_host.mix("rag.stats", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    (line,) = result.stdout.splitlines()
    stats = json.loads(line)
    assert stats["location"] == str(rag_host.data_dir / "qdrant"), stats
    assert {"name": "conversations", "points": before} in [
        {"name": c["name"], "points": c["points"]} for c in stats["collections"]
    ], stats

    rag_host.start()
    assert points(rag_host) == before
