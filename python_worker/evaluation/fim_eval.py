"""FIM exact match and edit similarity on held-out FIM rows.

Rows are the dataset builder's FIM rows (`prefix`, `middle`, `suffix`; `text`
is ignored): the model completes `style.psm(prefix, suffix)` greedily and the
middle it writes is compared with the real one. Exact match ignores leading
and trailing whitespace; edit similarity is 1 - Levenshtein distance / the
longer length (rapidfuzz's normalized similarity), averaged over rows.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rapidfuzz.distance import Levenshtein

from python_worker.evaluation.sampling import Sampling, complete
from python_worker.jsonl import read_objects
from python_worker.serving.base import FimPrompt
from python_worker.training.errors import Cancelled, InvalidRequest

DEFAULT_FIM_EXAMPLES = 200


@dataclass
class FimScore:
    exact_match: float
    edit_similarity: float
    examples: int


def read_rows(path: str, limit: int) -> list[tuple[str, str, str]]:
    needs = "a FIM row needs string prefix, middle and suffix"

    def bad_line(n: int, exc: json.JSONDecodeError | None) -> InvalidRequest:
        return InvalidRequest(f"{path}:{n}: not JSON ({exc.msg})" if exc else f"{path}:{n}: {needs}")

    rows = []
    for n, row in read_objects(Path(path), bad_line):
        if not all(isinstance(row.get(k), str) for k in ("prefix", "middle", "suffix")):
            raise InvalidRequest(f"{path}:{n}: {needs}")
        rows.append((row["prefix"], row["middle"], row["suffix"]))
        if len(rows) >= limit:
            break
    if not rows:
        raise InvalidRequest(f"fim_datasets: {path} has no rows")
    return rows


def score(
    model: Any, tokenizer: Any, style: Any, path: str, limit: int, context: int, cancel: threading.Event
) -> FimScore:
    rows = read_rows(path, limit)
    exact = similarity = 0.0
    for prefix, middle, suffix in rows:
        if cancel.is_set():
            raise Cancelled("cancelled during FIM evaluation")
        wanted = max(16, len(tokenizer(middle)["input_ids"]) * 2)
        budget = Sampling(max_tokens=min(wanted, context // 2))
        # A row longer than the context is cut around its hole, as serving cuts it.
        [got] = complete(model, tokenizer, FimPrompt(prefix, suffix), 1, budget, context, fim_style=style)
        exact += got.strip() == middle.strip()
        similarity += Levenshtein.normalized_similarity(got, middle)
    return FimScore(exact / len(rows), similarity / len(rows), len(rows))
