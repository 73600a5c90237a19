"""Retrieval-augmented memory.

- `embedder.py`: text embeddings (all-MiniLM-L6-v2 by default; the `Embed` RPC);
- `store.py`: the Qdrant store (embedded under DATA_DIR/qdrant, or QDRANT_URL), dense and hybrid search;
- `memory.py`: the memory RPCs as plain functions over the store;
- `logs.py`: conversation logs as user -> assistant exchanges (shared with the dataset builder);
- `chunking.py`: Markdown and Elixir files as overlapping chunks;
- `ingest.py`: the `Ingest` job;
- `augment.py`: memory hits put into a generation prompt within the context.
"""
