"""The memory store: text chunks, their embeddings and payload in Qdrant.

By default Qdrant runs embedded (`QdrantClient(path=DATA_DIR/qdrant)`): no
server, data in files, one process at a time (the worker owns it and opens it
lazily, on the first memory call). `QDRANT_URL` (with `QDRANT_API_KEY`) selects
a Qdrant server instead; everything else is the same code path.

Collections (`conversations`, the default, and `docs`, or any name matching
COLLECTION_PATTERN) are created on first upsert: a named dense vector `dense`
(the embedder's dimensions, cosine) and a full-text index with BM25 scoring on
the `text` payload field. Payload: source, kind, timestamp, text.

A point's id is a UUID derived from (collection, text), so storing the same text
twice adds nothing; upsert embeds only the texts that are new.

Search modes:
* `dense`: cosine similarity of the query embedding, hits below min_score dropped;
* `hybrid`: Qdrant's reciprocal rank fusion (RRF, as Tabby fuses) of the dense
  ranking and BM25 over the `text` index (Qdrant's own BM25, so the embedded
  and the server store rank alike); min_score still applies to the dense cosine,
  which every hit reports as its score.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from python_worker.errors import failed_precondition, invalid_argument, unavailable

log = logging.getLogger(__name__)

DEFAULT_COLLECTION = "conversations"
BUILTIN_COLLECTIONS = ("conversations", "docs")
COLLECTION_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
DEFAULT_TOP_K = 5
MAX_TOP_K = 100
DEFAULT_MIN_SCORE = 0.3
MODES = ("dense", "hybrid")
# From bench/results/rag_retrieval.json (200 questions, 10,000 Elixir chunks): hybrid
# finds the right chunk in the top 5 for 83% of questions against dense's 71.5%
# (MRR 0.683 vs 0.483). It costs latency only in the embedded store, whose BM25
# scans every chunk (p95 2.7 s vs 0.9 s at 10,000 chunks on 2 busy cores, about
# +40 ms at 300); a Qdrant server indexes BM25. `mode: "dense"` is there when speed matters more.
DEFAULT_MODE = "hybrid"
FILTER_KEYS = ("source", "kind")
# Candidates each ranking contributes to the fusion, per requested hit.
HYBRID_CANDIDATES_PER_HIT = 4
HYBRID_MIN_CANDIDATES = 20
DENSE = "dense"
UPSERT_BATCH = 256
# A fixed namespace: ids are stable across processes, machines and versions.
_ID_NAMESPACE = uuid.UUID("5b0f4c1e-6f3a-4d8e-9a57-3c2d1e0f9b8a")


@dataclass(frozen=True)
class Document:
    text: str
    source: str
    kind: str = ""
    # RFC 3339 UTC; empty means now.
    timestamp: str = ""


@dataclass(frozen=True)
class Hit:
    id: str
    source: str
    score: float  # the dense cosine, whatever the mode
    text: str
    kind: str
    timestamp: str


@dataclass(frozen=True)
class CollectionStats:
    name: str
    points: int
    dimensions: int
    sources: int


@dataclass(frozen=True)
class Upserted:
    added: int
    existing: int


Vectorise = Callable[[list[str]], list[list[float]]]
"""Embeds texts: one unit-norm vector per text, in order."""


def point_id(collection: str, text: str) -> str:
    """The point id of a text in a collection: the same text always maps to the same id."""
    return str(uuid.uuid5(_ID_NAMESPACE, f"{collection}\x00{text}"))


def check_collection(name: str, field: str = "collection") -> str:
    """The collection a request names (empty means the default), or INVALID_ARGUMENT."""
    name = name or DEFAULT_COLLECTION
    if not COLLECTION_PATTERN.match(name):
        raise invalid_argument(
            f"{field}: {name!r} is not a collection name (lowercase letters, digits, '_' and '-', "
            f"starting with a letter or digit, at most 63 characters; built in: {', '.join(BUILTIN_COLLECTIONS)})"
        )
    return name


def check_search(top_k: int, min_score: float | None, mode: str, filters: Sequence[tuple[str, str]]) -> None:
    """INVALID_ARGUMENT naming the field for a search that can never be answered."""
    if top_k < 0 or top_k > MAX_TOP_K:
        raise invalid_argument(f"top_k must be in 0..{MAX_TOP_K} (0 means {DEFAULT_TOP_K}), got {top_k}")
    if min_score is not None and not (-1.0 <= min_score <= 1.0):  # also rejects NaN
        raise invalid_argument(f"min_score must be a cosine in [-1, 1], got {min_score}")
    if mode and mode not in MODES:
        raise invalid_argument(f"mode must be one of {', '.join(MODES)} (empty means {DEFAULT_MODE}), got {mode!r}")
    for index, (key, _value) in enumerate(filters):
        if key not in FILTER_KEYS:
            raise invalid_argument(f"filters[{index}].key must be one of {', '.join(FILTER_KEYS)}, got {key!r}")


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class MemoryStore:
    """One Qdrant client (embedded or server), opened on first use; every method is thread-safe."""

    def __init__(
        self,
        vectorise: Callable[[], tuple[Vectorise, int]],
        *,
        path: Path | None = None,
        url: str = "",
        api_key: str = "",
    ) -> None:
        """`vectorise()` loads the embedder on first need and returns (embed function, dimensions)."""
        if not url and path is None:
            raise ValueError("a MemoryStore needs a path (embedded) or a url (server)")
        self._vectorise = vectorise
        self.path = path
        self.url = url
        self._api_key = api_key or None
        self._client: Any = None
        self._ready: set[str] = set()  # collections whose schema this process has checked
        self._lock = threading.RLock()

    @property
    def location(self) -> str:
        return self.url if self.url else str(self.path)

    # -- lifecycle ---------------------------------------------------------------

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._open()
            return self._client

    def _open(self) -> Any:
        from qdrant_client import QdrantClient

        if self.url:
            try:
                client = QdrantClient(url=self.url, api_key=self._api_key, timeout=30)
                client.get_collections()  # fail now, with the URL in the message, not on a later call
            except Exception as exc:
                raise unavailable(
                    f"QDRANT_URL: cannot reach Qdrant at {self.url}: {type(exc).__name__}: {exc}"
                ) from exc
            return client
        assert self.path is not None
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            return QdrantClient(path=str(self.path))
        except RuntimeError as exc:
            # The embedded store takes a file lock: a second process is refused.
            raise failed_precondition(
                f"the embedded Qdrant store at {self.path} is open in another process "
                f"(it admits one: run memory commands through the running host, or set QDRANT_URL): {exc}"
            ) from exc

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                try:
                    self._client.close()
                finally:
                    self._client = None
                    self._ready.clear()

    # -- collections -------------------------------------------------------------

    def _exists(self, name: str) -> bool:
        if name in self._ready:
            return True
        client = self.client()
        if not client.collection_exists(name):
            return False
        self._prepare(name)
        return True

    def _create(self, name: str, dimensions: int) -> None:
        from qdrant_client import models

        client = self.client()
        if not client.collection_exists(name):
            client.create_collection(
                name, vectors_config={DENSE: models.VectorParams(size=dimensions, distance=models.Distance.COSINE)}
            )
            log.info("memory: created collection %s (%d dimensions) in %s", name, dimensions, self.location)
        self._prepare(name)
        existing = self._dimensions(name)
        if existing != dimensions:
            raise failed_precondition(
                f"collection {name} holds {existing}-dimensional vectors but the embedder makes {dimensions}"
            )

    def _prepare(self, name: str) -> None:
        """The BM25 text index (the embedded store keeps payload indexes in memory only, so every open)."""
        import warnings

        from qdrant_client import models

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # local mode notes that other payload indexes do nothing
            self.client().create_payload_index(
                name, "text", models.TextIndexParams(type=models.TextIndexType.TEXT, scoring=True)
            )
        self._ready.add(name)

    def _dimensions(self, name: str) -> int:
        vectors = self.client().get_collection(name).config.params.vectors
        params = vectors.get(DENSE) if isinstance(vectors, Mapping) else vectors
        return int(params.size) if params is not None else 0

    # -- operations --------------------------------------------------------------

    def upsert(self, collection: str, documents: Sequence[Document]) -> Upserted:
        """Store the documents whose text is new to the collection; count new and already stored."""
        from qdrant_client import models

        collection = check_collection(collection)
        for index, doc in enumerate(documents):
            if not doc.text.strip():
                raise invalid_argument(f"documents[{index}].text must not be empty")
            if not doc.source.strip():
                raise invalid_argument(f"documents[{index}].source must not be empty")
        unique: dict[str, Document] = {}
        for doc in documents:
            unique.setdefault(point_id(collection, doc.text), doc)
        if not unique:
            return Upserted(0, 0)
        vectorise, dimensions = self._vectorise()
        with self._lock:
            self._create(collection, dimensions)
            client = self.client()
            ids = list(unique)
            found = {str(p.id) for p in client.retrieve(collection, ids, with_payload=False, with_vectors=False)}
        new = [(pid, doc) for pid, doc in unique.items() if pid not in found]
        # Embedding outside the lock: searches need not wait for a long ingest batch.
        vectors = vectorise([doc.text for _, doc in new]) if new else []
        stamp = now_rfc3339()
        points = [
            models.PointStruct(
                id=pid,
                vector={DENSE: vector},
                payload={"source": doc.source, "kind": doc.kind, "timestamp": doc.timestamp or stamp, "text": doc.text},
            )
            for (pid, doc), vector in zip(new, vectors, strict=True)
        ]
        with self._lock:
            client = self.client()
            for start in range(0, len(points), UPSERT_BATCH):
                client.upsert(collection, points[start : start + UPSERT_BATCH], wait=True)
        # Documents repeated within the request count as existing too: they added nothing.
        return Upserted(added=len(new), existing=len(documents) - len(new))

    def search(
        self,
        collection: str,
        query: str,
        *,
        top_k: int = 0,
        min_score: float | None = None,
        filters: Sequence[tuple[str, str]] = (),
        mode: str = "",
    ) -> list[Hit]:
        """The best hits for a query, best first (fused order for hybrid), all with cosine >= min_score."""
        collection = check_collection(collection)
        if not query.strip():
            raise invalid_argument("query must not be empty")
        check_search(top_k, min_score, mode, filters)
        top_k = top_k or DEFAULT_TOP_K
        threshold = DEFAULT_MIN_SCORE if min_score is None else min_score
        mode = mode or DEFAULT_MODE
        with self._lock:
            if not self._exists(collection):
                return []
        vectorise, _ = self._vectorise()
        (vector,) = vectorise([query])
        query_filter = _filter(filters)
        with self._lock:
            if mode == "dense":
                return self._dense(collection, vector, top_k, threshold, query_filter)
            return self._hybrid(collection, query, vector, top_k, threshold, query_filter)

    def _dense(
        self, collection: str, vector: list[float], top_k: int, threshold: float, query_filter: Any
    ) -> list[Hit]:
        points = (
            self.client()
            .query_points(
                collection,
                query=vector,
                using=DENSE,
                limit=top_k,
                score_threshold=threshold,
                query_filter=query_filter,
                with_payload=True,
            )
            .points
        )
        return [_hit(p, float(p.score)) for p in points]

    def _hybrid(
        self, collection: str, query: str, vector: list[float], top_k: int, threshold: float, query_filter: Any
    ) -> list[Hit]:
        from qdrant_client import models

        candidates = max(top_k * HYBRID_CANDIDATES_PER_HIT, HYBRID_MIN_CANDIDATES)
        points = (
            self.client()
            .query_points(
                collection,
                prefetch=[
                    models.Prefetch(
                        query=vector, using=DENSE, limit=candidates, score_threshold=threshold, filter=query_filter
                    ),
                    models.Prefetch(
                        query=models.TextQuery(text=query), using="text", limit=candidates, filter=query_filter
                    ),
                ],
                query=models.FusionQuery(fusion=models.Fusion.RRF),
                limit=candidates,
                with_payload=True,
                with_vectors=[DENSE],
            )
            .points
        )
        hits = []
        for point in points:
            # The fused score is a rank statistic; hits report (and are cut by) the dense cosine.
            cosine = _dot(vector, _dense_vector(point))
            if cosine >= threshold:
                hits.append(_hit(point, cosine))
                if len(hits) == top_k:
                    break
        return hits

    def delete(self, collection: str, source: str) -> int:
        """Delete every point whose source is exactly `source`; the number deleted."""
        from qdrant_client import models

        collection = check_collection(collection)
        if not source:
            raise invalid_argument("source must not be empty (it names the points to delete)")
        with self._lock:
            if not self._exists(collection):
                return 0
            client = self.client()
            selector = _filter([("source", source)])
            count = client.count(collection, count_filter=selector, exact=True).count
            if count:
                client.delete(collection, points_selector=models.FilterSelector(filter=selector), wait=True)
            return int(count)

    def stats(self) -> list[CollectionStats]:
        """Every collection (the built-in ones even before their first document), by name."""
        with self._lock:
            client = self.client()
            names = sorted({c.name for c in client.get_collections().collections} | set(BUILTIN_COLLECTIONS))
            return [self._stats(name) for name in names]

    def _stats(self, name: str) -> CollectionStats:
        if not self._exists(name):
            return CollectionStats(name, 0, 0, 0)
        client = self.client()
        points = client.count(name, exact=True).count
        return CollectionStats(name, int(points), self._dimensions(name), len(self._sources(name)))

    def _sources(self, name: str) -> set[str]:
        sources: set[str] = set()
        offset = None
        while True:
            records, offset = self.client().scroll(
                name, limit=1024, offset=offset, with_payload=["source"], with_vectors=False
            )
            sources.update(str((r.payload or {}).get("source", "")) for r in records)
            if offset is None:
                return sources

    def count(self, collection: str) -> int:
        """Points in a collection (0 when it does not exist yet)."""
        collection = check_collection(collection)
        with self._lock:
            if not self._exists(collection):
                return 0
            return int(self.client().count(collection, exact=True).count)


def _filter(filters: Sequence[tuple[str, str]]) -> Any:
    from qdrant_client import models

    if not filters:
        return None
    return models.Filter(
        must=[models.FieldCondition(key=key, match=models.MatchValue(value=value)) for key, value in filters]
    )


def _hit(point: Any, score: float) -> Hit:
    payload = point.payload or {}
    return Hit(
        id=str(point.id),
        source=str(payload.get("source", "")),
        score=score,
        text=str(payload.get("text", "")),
        kind=str(payload.get("kind", "")),
        timestamp=str(payload.get("timestamp", "")),
    )


def _dense_vector(point: Any) -> list[float]:
    vector = point.vector
    return list(vector[DENSE] if isinstance(vector, Mapping) else vector)


def _dot(a: Sequence[float], b: Sequence[float]) -> float:
    # Both are unit vectors (the embedder normalises; Qdrant normalises for cosine), so this is the cosine.
    return float(sum(x * y for x, y in zip(a, b, strict=True)))


def from_config(config: Any, vectorise: Callable[[], tuple[Vectorise, int]]) -> MemoryStore:
    """The store a worker Config selects: QDRANT_URL's server, else embedded under DATA_DIR/qdrant."""
    return MemoryStore(
        vectorise, path=Path(config.data_dir) / "qdrant", url=config.qdrant_url, api_key=config.qdrant_api_key
    )
