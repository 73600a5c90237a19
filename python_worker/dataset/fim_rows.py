"""Stage 2 fill-in-the-middle rows in the target model's own FIM format.

A row keeps the three parts (prefix + middle + suffix == the file text, exactly)
next to the formatted `text`, so a trainer can re-format for another model and a
test can check the reconstruction. `text` is the prompt followed by the middle:
the loss target is everything after the prompt. No EOS is appended, because the
EOS token belongs to the tokenizer, which the trainer owns.
"""

from __future__ import annotations

import random
from typing import Any

from python_worker import fim
from python_worker.dataset import spans
from python_worker.dataset.config import Stage2Config
from python_worker.dataset.elixir_ast import Parsed


def candidate_spans(text: str, language: str, parsed: Parsed | None) -> dict[str, list[spans.Span]]:
    found = spans.line_spans(text)
    if language == "elixir" and parsed is not None:
        found.update(spans.elixir_spans(parsed))
    elif language == "erlang":
        found.update(spans.erlang_spans(text))
    return found


def fim_rows(
    text: str,
    language: str,
    parsed: Parsed | None,
    config: Stage2Config,
    rng: random.Random,
    base: dict[str, Any],
) -> list[dict[str, Any]]:
    style = fim.style(config.fim_style)
    found = candidate_spans(text, language, parsed)
    rows: list[dict[str, Any]] = []
    used: set[tuple[int, int]] = set()
    for _ in range(config.fim_rows_per_file):
        picked = spans.pick(text, found, config.span_weights, config.random_span_rate, rng)
        if picked is None or picked[1] in used:
            continue
        kind, (start, end) = picked
        used.add((start, end))
        prefix, middle, suffix = text[:start], text[start:end], text[end:]
        mode = "spm" if rng.random() < config.spm_rate else "psm"
        prompt = style.spm(prefix, suffix) if mode == "spm" else style.psm(prefix, suffix)
        rows.append(
            {
                **base,
                "kind": "fim",
                "fim_mode": mode,
                "fim_style": style.name,
                "span_kind": kind,
                "prefix": prefix,
                "middle": middle,
                "suffix": suffix,
                "text": prompt + middle,
            }
        )
    return rows
