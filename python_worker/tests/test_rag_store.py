"""The memory store against the real all-MiniLM-L6-v2 and a real embedded Qdrant in a temporary directory.

(That the same text embeds to cosine 1.0 and related texts score higher than
unrelated ones is test_embed.py's job.)
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from python_worker.errors import WorkerError
from python_worker.rag import memory
from python_worker.rag.embedder import Embedders
from python_worker.rag.store import Document, MemoryStore, point_id
from python_worker.tests.procs import REPO

FACT = Document(
    "The staging database password is rotated every second Tuesday by the Lisbon ops team.",
    "ops.jsonl:7",
    "conversation",
)
OTHERS = [
    Document(
        "GenServer.call/3 sends a synchronous request to a server and waits for its reply.",
        "a.md#genserver",
        "markdown",
    ),
    Document("Enum.map/2 returns a list with the result of invoking fun on each element.", "enum.ex:10", "code"),
    Document("Supervisors restart their children according to the chosen strategy.", "b.md#supervisors", "markdown"),
]
PARAPHRASE = "How often do we change the credentials of the staging DB, and who does it?"
UNRELATED = "A recipe for chocolate cake with two cups of flour"


@pytest.fixture(scope="module")
def embedders() -> Embedders:
    return Embedders("cpu")


@pytest.fixture
def store(tmp_path: Path, embedders: Embedders) -> Iterator[MemoryStore]:
    opened = MemoryStore(memory.default_vectoriser(embedders), path=tmp_path / "qdrant")
    yield opened
    opened.close()


@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_a_paraphrased_question_finds_the_fact_first_and_an_unrelated_one_nothing(
    store: MemoryStore, mode: str
) -> None:
    assert store.upsert("", [*OTHERS, FACT]).added == 4
    hits = store.search("", PARAPHRASE, mode=mode)
    assert hits and hits[0].source == FACT.source and hits[0].text == FACT.text
    assert hits[0].kind == "conversation" and hits[0].timestamp.endswith("Z")
    assert hits[0].id == point_id("conversations", FACT.text)
    assert all(h.score >= 0.3 for h in hits)
    assert store.search("", UNRELATED, mode=mode) == []
    # min_score 0 lets everything through: the threshold, not the index, dropped them.
    assert len(store.search("", UNRELATED, mode=mode, min_score=-1.0)) == 4


def test_hybrid_scores_are_the_dense_cosine(store: MemoryStore) -> None:
    store.upsert("docs", [*OTHERS, FACT])
    dense = {h.id: h.score for h in store.search("docs", PARAPHRASE, mode="dense", min_score=-1, top_k=4)}
    for hit in store.search("docs", PARAPHRASE, mode="hybrid", min_score=-1, top_k=4):
        assert hit.score == pytest.approx(dense[hit.id], abs=1e-4)


def test_storing_the_same_text_twice_adds_nothing(store: MemoryStore) -> None:
    first = store.upsert("", [FACT, *OTHERS, FACT])
    assert (first.added, first.existing) == (4, 1)
    # Same text from another source is the same point: ids hash (collection, text).
    again = store.upsert("", [Document(FACT.text, "elsewhere:1"), *OTHERS])
    assert (again.added, again.existing) == (0, 4)
    assert store.count("") == 4
    # The same text in another collection is another point.
    assert store.upsert("docs", [FACT]).added == 1


def test_closing_and_reopening_keeps_the_collection_and_its_search(
    tmp_path: Path, embedders: Embedders, store: MemoryStore
) -> None:
    store.upsert("", [*OTHERS, FACT])
    store.close()
    reopened = MemoryStore(memory.default_vectoriser(embedders), path=tmp_path / "qdrant")
    try:
        assert reopened.count("") == 4
        # The BM25 text index is rebuilt on open (the embedded store keeps it in memory).
        assert reopened.search("", PARAPHRASE, mode="hybrid")[0].source == FACT.source
        assert reopened.upsert("", [FACT]).added == 0
    finally:
        reopened.close()


def test_delete_by_source_removes_exactly_that_source(store: MemoryStore) -> None:
    store.upsert("", [*OTHERS, FACT, Document("Another line of the same log.", FACT.source)])
    assert store.delete("", FACT.source) == 2
    assert store.delete("", FACT.source) == 0
    assert store.count("") == 3
    assert store.search("", PARAPHRASE, min_score=-1, top_k=10, filters=[("source", FACT.source)]) == []
    assert store.delete("never-created", "x") == 0


def test_filters_and_stats(store: MemoryStore) -> None:
    store.upsert("", [*OTHERS, FACT])
    hits = store.search("", "GenServer supervisors", min_score=-1, top_k=10, filters=[("kind", "markdown")])
    assert {h.source for h in hits} == {"a.md#genserver", "b.md#supervisors"}
    stats = {s.name: s for s in store.stats()}
    assert (stats["conversations"].points, stats["conversations"].dimensions, stats["conversations"].sources) == (
        4,
        384,
        4,
    )
    assert (stats["docs"].points, stats["docs"].dimensions) == (0, 0)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.search("Bad Name", "q"), "collection: 'Bad Name' is not a collection name"),
        (lambda s: s.search("", "  "), "query must not be empty"),
        (lambda s: s.search("", "q", top_k=-1), "top_k must be in 0..100"),
        (lambda s: s.search("", "q", top_k=101), "top_k must be in 0..100"),
        (lambda s: s.search("", "q", mode="sparse"), "mode must be one of dense, hybrid"),
        (lambda s: s.search("", "q", min_score=2.0), "min_score must be a cosine in [-1, 1]"),
        (lambda s: s.search("", "q", filters=[("text", "x")]), "filters[0].key must be one of source, kind"),
        (lambda s: s.upsert("", [Document("", "s")]), "documents[0].text must not be empty"),
        (lambda s: s.upsert("", [Document("t", "")]), "documents[0].source must not be empty"),
        (lambda s: s.delete("", ""), "source must not be empty"),
    ],
)
def test_bad_requests_say_what_was_wrong(store: MemoryStore, call, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(WorkerError) as raised:
        call(store)
    assert raised.value.code.name == "INVALID_ARGUMENT"
    assert message in raised.value.message


def test_a_second_process_is_refused_the_embedded_store_with_a_reason(store: MemoryStore, tmp_path: Path) -> None:
    store.upsert("", [FACT])  # opens it: this process holds the lock now
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from python_worker.errors import WorkerError\n"
        "from python_worker.rag.store import MemoryStore\n"
        "try:\n"
        "    MemoryStore(lambda: None, path=Path(sys.argv[1])).count('')\n"
        "except WorkerError as e:\n"
        "    print(e.code.name, e.message)\n"
    )
    other = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "qdrant")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert other.stdout.startswith("FAILED_PRECONDITION"), other.stdout + other.stderr
    assert "is open in another process" in other.stdout and "QDRANT_URL" in other.stdout


@pytest.mark.filterwarnings(
    "ignore:Api key is used with an insecure connection", "ignore:Failed to obtain server version"
)
def test_qdrant_url_selects_a_server_and_an_unreachable_one_is_unavailable_naming_it(tmp_path: Path) -> None:
    from python_worker import config
    from python_worker.rag import store

    embedded = store.from_config(config.load({"DATA_DIR": str(tmp_path)}), lambda: None)  # type: ignore[arg-type, return-value]
    assert embedded.location == str(tmp_path / "qdrant")
    with pytest.raises(config.ConfigError, match="QDRANT_URL must be an http:// or https:// URL"):
        config.load({"QDRANT_URL": "qdrant:6333"})
    # Port 9 (discard) on loopback: nothing listens, so the connection is refused at once.
    server = store.from_config(config.load({"QDRANT_URL": "http://127.0.0.1:9", "QDRANT_API_KEY": "k"}), lambda: None)  # type: ignore[arg-type, return-value]
    assert server.location == "http://127.0.0.1:9"
    with pytest.raises(WorkerError) as raised:
        server.stats()
    assert raised.value.code.name == "UNAVAILABLE"
    assert raised.value.message.startswith("QDRANT_URL: cannot reach Qdrant at http://127.0.0.1:9")
