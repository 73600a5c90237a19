"""Dataset rows (issue 4's JSONL) to token ids and loss labels.

Row kinds, told apart by their keys:
  * text:   {"text"}: loss on every token (continued pre-training, replay).
  * chat:   {"messages": [{role, content}, ...]}: rendered with the tokenizer's
            chat template; loss only on the assistant turns (their content and
            the end-of-turn marker, so the model learns to stop).
  * fim:    {"text", "prefix", "middle", "suffix"}: `text` is already formatted
            with the model's FIM tokens, and the middle is what follows the last
            sentinel; loss only on the middle (plus EOS, so the model learns to
            end the infill).
  * prompt/completion: {"prompt", "completion"}: loss on the completion.

Labels are -100 where no loss applies, the convention of transformers and trl.
Masks come from character offsets: a token is supervised when its span overlaps
a supervised character span, so the tokenizer's merges across a boundary do not
matter.

Length: a text row longer than max_len is split into consecutive windows (the
whole file is trained on). A FIM row longer than max_len is re-formatted from
its parts with the end of its prefix and the start of its suffix, the code
nearest the hole, as evaluation and serving cut a long file (`fim.fit_around_hole`).
Any other supervised row longer than max_len keeps the max_len tokens ending at
its last supervised token: the target survives and the context is cut from the
left.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import TemplateError

from python_worker import fim
from python_worker.jsonl import read_objects

IGNORE = -100

# The `source` of the dataset's replay rows: general (non-Elixir) code mixed in
# against forgetting. Exactly this value; "replay:..." is not replay.
REPLAY_SOURCE = "replay"


def is_replay(row: dict[str, Any]) -> bool:
    """True for a replay row (general code), which must not count as Elixir."""
    return row.get("source") == REPLAY_SOURCE


# ChatML, for a tokenizer without a chat template of its own.
_CHATML = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


class DatasetError(ValueError):
    """A dataset file that cannot be read; the message has the file and line."""


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]


@dataclass
class DataStats:
    rows: int = 0
    sequences: int = 0
    tokens: int = 0
    supervised_tokens: int = 0
    kinds: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    split_rows: int = 0
    cut_rows: int = 0
    fim_fitted_rows: int = 0  # FIM rows re-formatted around their hole to fit

    def as_metrics(self, prefix: str) -> dict[str, float]:
        out = {
            f"{prefix}rows": self.rows,
            f"{prefix}sequences": self.sequences,
            f"{prefix}tokens": self.tokens,
            f"{prefix}supervised_tokens": self.supervised_tokens,
            f"{prefix}split_rows": self.split_rows,
            f"{prefix}cut_rows": self.cut_rows,
            f"{prefix}fim_fitted_rows": self.fim_fitted_rows,
        }
        out.update({f"{prefix}rows_{k}": v for k, v in self.kinds.items()})
        out.update({f"{prefix}skipped_{k}": v for k, v in self.skipped.items()})
        return {k: float(v) for k, v in out.items()}


def read_jsonl(path: Path, limit: int | None = None) -> Iterator[dict[str, Any]]:
    """Rows of a JSONL file; a malformed line is a DatasetError naming it."""

    def bad_line(lineno: int, exc: json.JSONDecodeError | None) -> DatasetError:
        problem = f"not JSON ({exc})" if exc is not None else "not a JSON object"
        return DatasetError(f"{path}:{lineno}: {problem}")

    for count, (_, row) in enumerate(read_objects(path, bad_line), 1):
        yield row
        if limit is not None and count >= limit:
            return


def row_kind(row: dict[str, Any]) -> str | None:
    if isinstance(row.get("messages"), list):
        return "chat"
    if isinstance(row.get("text"), str) and isinstance(row.get("middle"), str):
        return "fim"
    if isinstance(row.get("text"), str):
        return "text"
    if isinstance(row.get("prompt"), str) and isinstance(row.get("completion"), str):
        return "prompt_completion"
    return None


class RowEncoder:
    """Turns rows into (input_ids, labels) for one tokenizer and sequence length."""

    def __init__(self, tokenizer: Any, max_len: int) -> None:
        self.tok = tokenizer
        self.max_len = max_len
        self.eos = tokenizer.eos_token or ""
        self.eos_id = tokenizer.eos_token_id
        self.template = tokenizer.chat_template or _CHATML

    def encode(self, row: dict[str, Any], stats: DataStats) -> list[Encoded]:
        kind = row_kind(row)
        stats.rows += 1
        if kind is None:
            stats.skipped["unknown_format"] += 1
            return []
        try:
            text, spans = self._render(kind, row)
        except (KeyError, TypeError, ValueError, TemplateError):
            # A chat template rejecting a row, a message without role/content.
            stats.skipped[f"bad_{kind}"] += 1
            return []
        if not text.strip():
            stats.skipped["empty"] += 1
            return []
        stats.kinds[kind] += 1
        ids, labels = self._tokenize(text, spans)
        if kind == "fim" and len(ids) > self.max_len and (fitted := self._fit_fim(row)) is not None:
            ids, labels = fitted
            stats.fim_fitted_rows += 1
        if kind == "text":
            seqs = self._windows(ids, stats)
        else:
            seqs = self._cut(ids, labels, stats)
        for seq in seqs:
            stats.sequences += 1
            stats.tokens += len(seq.input_ids)
            stats.supervised_tokens += sum(1 for x in seq.labels if x != IGNORE)
        if not seqs:
            stats.skipped["no_target"] += 1
        return seqs

    def _fit_fim(self, row: dict[str, Any]) -> tuple[list[int], list[int]] | None:
        """Token ids and labels of a too-long FIM row re-formatted around its hole
        to fit max_len, or None for a row that cannot be (no parts, an unknown
        style, a middle that alone fills max_len): the left cut then applies.

        Cutting the formatted text from the left, as other rows are cut, would
        drop the prefix (PSM) or the start of the suffix (SPM): the code next to
        the middle, without which it cannot be predicted."""
        parts = [row.get(k) for k in ("prefix", "middle", "suffix")]
        if not all(isinstance(p, str) for p in parts) or row.get("fim_style") not in fim.STYLES:
            return None
        prefix, middle, suffix = parts
        style = fim.style(row["fim_style"])
        layout = style.spm if row.get("fim_mode") == "spm" else style.psm

        def encode(pre: str, suf: str) -> tuple[list[int], list[int]]:
            return self._tokenize(*self._render("fim", {**row, "text": layout(pre, suf) + middle}))

        return fim.fit_around_hole(self.tok, prefix, suffix, self.max_len, encode, lambda seq: len(seq[0]))

    # Rendering: the full text plus the character spans that carry loss.
    def _render(self, kind: str, row: dict[str, Any]) -> tuple[str, list[tuple[int, int]] | None]:
        if kind == "text":
            return row["text"] + self.eos, None
        if kind == "fim":
            text, middle = row["text"], row["middle"]
            if self.eos and text.endswith(self.eos):
                text = text[: -len(self.eos)]
            # The middle is what follows the last sentinel in every FIM layout we
            # build (PSM, SPM, Mistral's suffix-first), so look for it at the end.
            start = len(text) - len(middle) if text.endswith(middle) else text.rfind(middle)
            if start < 0 or not middle:
                raise ValueError("middle not found in text")
            full = text + self.eos
            return full, [(start, len(full))]
        if kind == "prompt_completion":
            prompt = row["prompt"]
            full = prompt + row["completion"] + self.eos
            return full, [(len(prompt), len(full))]
        messages = [{"role": m["role"], "content": m["content"]} for m in row["messages"]]
        full = self._chat(messages, add_generation_prompt=False)
        spans = []
        for i, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            start = len(self._chat(messages[:i], add_generation_prompt=True))
            end = len(self._chat(messages[: i + 1], add_generation_prompt=False))
            spans.append((start, end))
        if not spans:
            raise ValueError("no assistant turn")
        return full, spans

    def _chat(self, messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
        if not messages and not add_generation_prompt:
            return ""
        return self.tok.apply_chat_template(
            messages,
            chat_template=self.template,
            tokenize=False,
            add_generation_prompt=add_generation_prompt,
        )

    def _tokenize(self, text: str, spans: list[tuple[int, int]] | None) -> tuple[list[int], list[int]]:
        # verbose=False: whole rows are tokenized and then cut into windows of
        # max_seq_length here, so "longer than the model's maximum" is expected.
        if spans is None:
            ids = self.tok(text, add_special_tokens=False, verbose=False)["input_ids"]
            return ids, list(ids)
        enc = self.tok(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        ids = enc["input_ids"]
        labels = []
        for token, (s, e) in zip(ids, enc["offset_mapping"], strict=True):
            inside = any(s < end and e > start for start, end in spans)
            labels.append(token if inside else IGNORE)
        return ids, labels

    def _windows(self, ids: list[int], stats: DataStats) -> list[Encoded]:
        if len(ids) > self.max_len:
            stats.split_rows += 1
        out = []
        for start in range(0, len(ids), self.max_len):
            chunk = ids[start : start + self.max_len]
            if len(chunk) >= 2:  # one token predicts nothing
                out.append(Encoded(chunk, list(chunk)))
        return out

    def _cut(self, ids: list[int], labels: list[int], stats: DataStats) -> list[Encoded]:
        supervised = [i for i, x in enumerate(labels) if x != IGNORE]
        if not supervised:
            return []
        if len(ids) <= self.max_len:
            return [Encoded(ids, labels)]
        stats.cut_rows += 1
        end = supervised[-1] + 1
        start = max(0, end - self.max_len)
        ids, labels = ids[start:end], labels[start:end]
        # The first kept token has no context to be predicted from.
        if any(x != IGNORE for x in labels[1:]):
            return [Encoded(ids, labels)]
        return []


# Tokens of an eval set used for eval loss unless configured otherwise: enough
# for a stable mean, small enough that evals never cost more than training.
DEFAULT_EVAL_TOKENS = 200_000


def encode_files(
    paths: list[Path],
    encoder: RowEncoder,
    limit: int | None = None,
    on_progress: Callable[[DataStats], None] | None = None,
    every: int = 5000,
    max_tokens: int | None = None,
    keep: Callable[[dict[str, Any]], bool] | None = None,
) -> tuple[dict[str, list[list[int]]], DataStats]:
    """Columns input_ids/labels for the rows of the files that `keep` accepts (all
    when None): at most `limit` of them from each file, and from each only the rows
    until `max_tokens` tokens are reached (the row that reaches it is kept whole,
    so no row is ever cut)."""
    stats = DataStats()
    input_ids: list[list[int]] = []
    labels: list[list[int]] = []
    for path in paths:
        start, kept = stats.tokens, 0
        for row in read_jsonl(path):
            if keep is not None and not keep(row):
                continue
            if limit is not None and kept >= limit:
                break
            kept += 1
            for seq in encoder.encode(row, stats):
                input_ids.append(seq.input_ids)
                labels.append(seq.labels)
            if on_progress is not None and stats.rows % every == 0:
                on_progress(stats)
            if max_tokens is not None and stats.tokens - start >= max_tokens:
                break
    return {"input_ids": input_ids, "labels": labels}, stats
