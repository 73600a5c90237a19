"""Token counts for the manifest and the report.

`tokenizer` in the config picks how rows are counted:
- a tokenizer.json file, or a model directory holding one: the model's own BPE
  tokens via the `tokenizers` library (no special tokens added; FIM sentinels in
  the text count as the single tokens they are);
- "regex": identifiers, numbers and symbols (lexer.TOKEN_RE), roughly 1.3x fewer
  than a code BPE; no model files needed;
- "auto": data/models/tiny-elixir/tokenizer.json when it exists, else "regex".
Chat rows count the tokens of their message contents (no template overhead).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from python_worker.config import DEFAULT_MODEL
from python_worker.dataset import lexer
from python_worker.dataset.errors import InvalidRequest


def resolve(spec: str) -> str:
    """The concrete tokenizer: 'regex' or the absolute path of a tokenizer.json."""
    if spec == "regex":
        return "regex"
    if spec == "auto":
        default = Path(DEFAULT_MODEL) / "tokenizer.json"
        return str(default) if default.is_file() else "regex"
    p = Path(spec)
    if p.is_dir():
        p = p / "tokenizer.json"
    if not p.is_file():
        raise InvalidRequest(
            f"tokenizer: {spec} is neither a tokenizer.json nor a directory holding one (use 'regex' or 'auto')"
        )
    return str(p.resolve())


def fingerprint(resolved: str) -> str:
    if resolved == "regex":
        return "regex"
    return hashlib.sha256(Path(resolved).read_bytes()).hexdigest()


class TokenCounter:
    def __init__(self, resolved: str) -> None:
        self._tok = None
        if resolved != "regex":
            # We already run one process per core; the library's own thread pool
            # would only oversubscribe them.
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            from tokenizers import Tokenizer

            self._tok = Tokenizer.from_file(resolved)

    def count(self, texts: list[str]) -> list[int]:
        if not texts:
            return []
        if self._tok is None:
            return [len(lexer.TOKEN_RE.findall(t)) for t in texts]
        encoded = self._tok.encode_batch_fast(texts, add_special_tokens=False)
        return [len(e.ids) for e in encoded]
