"""RAG memory: retrieval quality of dense vs hybrid (BM25 + dense, RRF), ingest throughput, query latency.

    ELIXIR_CORPUS_DIR=../shared/corpus .venv/bin/python bench/rag_retrieval.py \
        [--docs DIR] [--extra DIR ...] [--chunks 10000] [--pairs 200] [--no-save]

1. The labelled set, written by this script from the Elixir docs on this machine
   (--docs: the Elixir stdlib sources; default /usr/lib/elixir/lib when Debian's
   package holds them, else $ELIXIR_CORPUS_DIR/elixir/lib): for every documented function
   (an `@doc` heredoc followed by its `def`), two questions, never written by hand:
   - from the doc's first sentence: "Which Enum function returns a list where ...?";
   - from the function's name: "What does Enum.map do?".
   --pairs of them are sampled (seeded), half of each kind. A question's answer is
   any chunk of the same file that holds the doc's first line or the `def` line.
2. The store: an embedded Qdrant in a temporary directory, filled with the first
   --chunks chunks (rag/chunking.py) of the docs' .ex files and then of --extra
   directories (default: the ecto, phoenix, plug, jason and telemetry sources
   beside the Elixir ones), all through MemoryStore.upsert in batches of 64, as
   the Ingest job does: the ingest throughput is chunks/s of that, embedding included.
3. Every question is searched in both modes (top_k 10, min_score -1 so the
   threshold does not hide ranking): recall@5 (a right chunk in the first 5) and
   MRR@10, their hybrid/dense ratios, and each mode's query latency (query
   embedding included) p50/p95 at that store size.

Ends with emit("rag_retrieval", ...): one JSON line, saved to
bench/results/rag_retrieval.json (not with --no-save, nor with sizes other than
the defaults).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.results import emit
from python_worker.rag import chunking, memory
from python_worker.rag.embedder import Embedders
from python_worker.rag.store import Document, MemoryStore

# The real Elixir corpus, passed in (never assumed beside the clone).
CORPUS_DIR = Path(os.environ["ELIXIR_CORPUS_DIR"]) if os.environ.get("ELIXIR_CORPUS_DIR") else None
DEFAULT_CHUNKS = 10_000
DEFAULT_PAIRS = 200
TOP_K = 10
BATCH = 64

_DOC_START = re.compile(r'^(?P<indent>[ \t]*)@doc\s+"""\s*$')
_DEF = re.compile(r"^[ \t]*(?P<def>def(?:macro)?\s+(?P<name>[a-z_][\w?!]*))")
_MODULE = re.compile(r"^\s*defmodule\s+([A-Z][\w.]*)\s+do", re.MULTILINE)


@dataclass(frozen=True)
class Pair:
    question: str
    path: str
    keys: tuple[str, ...]  # a chunk of `path` holding one of these answers the question
    kind: str  # "sentence" or "name"


def default_docs() -> Path:
    debian = Path("/usr/lib/elixir/lib")
    if any(debian.glob("*/lib/**/*.ex")):
        return debian
    if CORPUS_DIR is None:
        raise SystemExit("rag_retrieval: set ELIXIR_CORPUS_DIR to the Elixir corpus, or give --docs and --extra")
    return CORPUS_DIR / "elixir" / "lib"


def elixir_files(root: Path) -> list[Path]:
    files = sorted(root.glob("*/lib/**/*.ex")) or sorted(root.glob("**/*.ex"))
    return [f for f in files if "/test/" not in str(f)]


def first_sentence(doc: str) -> str:
    paragraph = doc.strip().split("\n\n", 1)[0]
    text = " ".join(line.strip() for line in paragraph.splitlines())
    text = text.replace("`", "")
    match = re.match(r"(.+?[.!?])(\s|$)", text)
    return (match.group(1) if match else text).rstrip(".!? ")


def documented_functions(text: str) -> list[tuple[int, str, str, str]]:
    """(line index, doc, `def name` text, name) for each `@doc \"\"\"` heredoc directly above a def
    (only @spec/@impl/@doc-metadata lines between)."""
    lines = text.splitlines()
    out = []
    index = 0
    while index < len(lines):
        start = _DOC_START.match(lines[index])
        if not start:
            index += 1
            continue
        end = next((k for k in range(index + 1, len(lines)) if lines[k].strip() == '"""'), None)
        if end is None:
            break
        doc = "\n".join(lines[index + 1 : end])
        follow = end + 1
        while follow < len(lines) and (
            not lines[follow].strip()
            or lines[follow].lstrip().startswith(("@spec", "@impl", "@doc ", "@deprecated", "when ", "::"))
        ):
            follow += 1
        match = _DEF.match(lines[follow]) if follow < len(lines) else None
        if match:
            out.append((index, doc, match.group("def"), match.group("name")))
        index = end + 1
    return out


def pairs_of(path: Path) -> list[Pair]:
    text = path.read_text(encoding="utf-8", errors="replace")
    module_at = [(text[: m.start()].count("\n"), m.group(1)) for m in _MODULE.finditer(text)]
    out = []
    for line, doc, definition, name in documented_functions(text):
        module = next((mod for at, mod in reversed(module_at) if at < line), None)
        if module is None:
            continue
        sentence = first_sentence(doc)
        doc_line = doc.strip().splitlines()[0].strip() if doc.strip() else ""
        if len(sentence) < 25 or sentence.lower().startswith(
            ("see ", "same as", "deprecated", "this function is deprecated")
        ):
            continue
        keys = tuple(k for k in (doc_line, f"{definition}(") if k)
        short = module.rsplit(".", 1)[-1] if module.count(".") > 1 else module
        words = sentence.split()
        lead = words[0].lower() if words[0][1:].islower() else words[0]
        phrased = " ".join([lead, *words[1:]])
        if lead.endswith("s") and not lead.endswith("ss"):
            question = f"Which {short} function {phrased}?"
        else:
            question = f"In {short}, which function: {phrased}?"
        out.append(Pair(question, str(path), keys, "sentence"))
        out.append(Pair(f"What does {module}.{name} do?", str(path), keys, "name"))
    return out


def labelled_set(files: list[Path], count: int, seed: int) -> list[Pair]:
    every = [p for f in files for p in pairs_of(f)]
    rng = random.Random(seed)
    chosen: list[Pair] = []
    for kind in ("sentence", "name"):
        pool = [p for p in every if p.kind == kind]
        chosen += rng.sample(pool, min(count // 2, len(pool)))
    return chosen


def corpus(files: list[Path], limit: int) -> list[Document]:
    docs: list[Document] = []
    seen: set[str] = set()
    for path in files:
        for chunk in chunking.chunk_file(path):
            if chunk.text in seen:
                continue
            seen.add(chunk.text)
            docs.append(Document(chunk.text, chunk.source, chunk.kind))
            if len(docs) == limit:
                return docs
    return docs


def relevant(hit_source: str, hit_text: str, pair: Pair) -> bool:
    return hit_source.rsplit(":", 1)[0] == pair.path and any(k in hit_text for k in pair.keys)


def evaluate(store: MemoryStore, pairs: list[Pair], mode: str) -> dict[str, float]:
    ranks: list[int | None] = []
    latencies: list[float] = []
    for pair in pairs:
        started = time.perf_counter()
        hits = store.search("docs", pair.question, top_k=TOP_K, min_score=-1.0, mode=mode)
        latencies.append(time.perf_counter() - started)
        rank = next((i for i, h in enumerate(hits, 1) if relevant(h.source, h.text, pair)), None)
        ranks.append(rank)
    by_kind = {}
    for kind in ("sentence", "name"):
        picked = [r for r, p in zip(ranks, pairs, strict=True) if p.kind == kind]
        by_kind[f"recall_at_5_{kind}"] = round(sum(1 for r in picked if r and r <= 5) / max(len(picked), 1), 4)
    latencies.sort()
    return {
        "recall_at_5": round(sum(1 for r in ranks if r and r <= 5) / len(ranks), 4),
        "mrr_at_10": round(sum(1 / r for r in ranks if r) / len(ranks), 4),
        **by_kind,
        "latency_p50_ms": round(statistics.median(latencies) * 1000, 1),
        "latency_p95_ms": round(latencies[int(0.95 * (len(latencies) - 1))] * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=Path)
    parser.add_argument("--extra", type=Path, nargs="*")
    parser.add_argument("--chunks", type=int, default=DEFAULT_CHUNKS)
    parser.add_argument("--pairs", type=int, default=DEFAULT_PAIRS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    if args.docs is None:
        args.docs = default_docs()
    if args.extra is None:
        if CORPUS_DIR is None:
            parser.error("set ELIXIR_CORPUS_DIR, or give --extra DIR... (an empty --extra adds none)")
        args.extra = [CORPUS_DIR / n / "lib" for n in ("ecto", "phoenix", "plug", "jason", "telemetry")]
    wall = time.monotonic()

    doc_files = elixir_files(args.docs)
    if not doc_files:
        raise SystemExit(f"--docs {args.docs}: no .ex files with Elixir docs found")
    pairs = labelled_set(doc_files, args.pairs, args.seed)
    extra_files = [f for d in args.extra if d.is_dir() for f in sorted(d.rglob("*.ex"))]
    docs = corpus(doc_files + extra_files, args.chunks)
    print(f"{len(pairs)} labelled pairs, {len(docs)} chunks", file=sys.stderr)

    embedders = Embedders("cpu")
    with tempfile.TemporaryDirectory(prefix="rag-bench-") as tmp:
        store = MemoryStore(memory.default_vectoriser(embedders), path=Path(tmp) / "qdrant")
        store.upsert("docs", docs[:1])  # loads the embedder and opens the store outside the timing
        started = time.monotonic()
        added = 1
        for start in range(1, len(docs), BATCH):
            added += store.upsert("docs", docs[start : start + BATCH]).added
        ingest_s = time.monotonic() - started
        print(f"ingested {added} chunks in {ingest_s:.0f}s", file=sys.stderr)
        results = {mode: evaluate(store, pairs, mode) for mode in ("dense", "hybrid")}
        store.close()

    dense, hybrid = results["dense"], results["hybrid"]
    result = {
        "pairs": len(pairs),
        "chunks": added,
        "docs": str(args.docs),
        "dense": dense,
        "hybrid": hybrid,
        "recall_at_5_ratio": round(hybrid["recall_at_5"] / max(dense["recall_at_5"], 1e-9), 3),
        "mrr_ratio": round(hybrid["mrr_at_10"] / max(dense["mrr_at_10"], 1e-9), 3),
        "ingest_chunks_per_s": round((len(docs) - 1) / ingest_s, 1),
        "query_p95_ms_at_chunks": {"dense": dense["latency_p95_ms"], "hybrid": hybrid["latency_p95_ms"]},
        "store": "embedded Qdrant (local mode)",
        "embedder": "all-MiniLM-L6-v2 on CPU",
        "wall_s": round(time.monotonic() - wall, 1),
    }
    default_sizes = (args.chunks, args.pairs, args.seed) == (DEFAULT_CHUNKS, DEFAULT_PAIRS, 0)
    emit("rag_retrieval", result, save=default_sizes and not args.no_save)


if __name__ == "__main__":
    main()
