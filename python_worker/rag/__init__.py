"""Retrieval-augmented memory: text embeddings (`embedder.py`)."""
