"""The memory RPCs as plain functions: protobuf request in, store call, protobuf response out.

The servicer runs each in a thread (the store embeds and does file I/O).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from python_worker.errors import invalid_argument
from python_worker.proto import worker_pb2 as pb
from python_worker.rag.embedder import DEFAULT_MODEL_ID, Embedders
from python_worker.rag.store import Document, Hit, MemoryStore, Vectorise

MAX_DOCUMENTS = 2048


def default_vectoriser(embedders: Embedders) -> Callable[[], tuple[Vectorise, int]]:
    """The default embedder (all-MiniLM-L6-v2, or EMBED_MODEL) as the store's vectoriser, loaded on first need."""

    def load() -> tuple[Vectorise, int]:
        _, embedder = embedders.get(DEFAULT_MODEL_ID)
        return (lambda texts: embedder.embed(texts).vectors), embedder.dimensions

    return load


def embed_model_name() -> str:
    """What the store embeds with, without loading it: EMBED_MODEL's path or the default's name."""
    return os.environ.get("EMBED_MODEL", "").strip() or DEFAULT_MODEL_ID


def hit_proto(hit: Hit) -> pb.MemoryHit:
    return pb.MemoryHit(
        source=hit.source, score=hit.score, text=hit.text, kind=hit.kind, timestamp=hit.timestamp, id=hit.id
    )


def upsert_documents(store: MemoryStore, request: pb.UpsertDocumentsRequest) -> pb.UpsertDocumentsResponse:
    if not request.documents:
        raise invalid_argument("documents: at least one document is required")
    if len(request.documents) > MAX_DOCUMENTS:
        raise invalid_argument(f"documents: at most {MAX_DOCUMENTS} per request, got {len(request.documents)}")
    documents = [Document(d.text, d.source, d.kind, d.timestamp) for d in request.documents]
    result = store.upsert(request.collection, documents)
    return pb.UpsertDocumentsResponse(added=result.added, existing=result.existing)


def search_memory(store: MemoryStore, request: pb.SearchMemoryRequest) -> pb.SearchMemoryResponse:
    for index, f in enumerate(request.filters):
        if not f.value:
            raise invalid_argument(f"filters[{index}].value must not be empty")
    hits = store.search(
        request.collection,
        request.query,
        top_k=request.top_k,
        min_score=request.min_score if request.HasField("min_score") else None,
        filters=[(f.key, f.value) for f in request.filters],
        mode=request.mode,
    )
    return pb.SearchMemoryResponse(hits=[hit_proto(h) for h in hits])


def delete_documents(store: MemoryStore, request: pb.DeleteDocumentsRequest) -> pb.DeleteDocumentsResponse:
    return pb.DeleteDocumentsResponse(deleted=store.delete(request.collection, request.source))


def memory_stats(store: MemoryStore) -> pb.MemoryStatsResponse:
    return pb.MemoryStatsResponse(
        collections=[
            pb.CollectionStats(name=s.name, points=s.points, dimensions=s.dimensions, sources=s.sources)
            for s in store.stats()
        ],
        location=store.location,
        embed_model=embed_model_name(),
    )
