"""Fill-in-the-middle formats of the model families we target.

One table serves both the generation backend (which formats a FIM request with
the loaded model's own tokens) and the dataset builder (which formats training
rows for the target model named in its config).

PSM (prefix, suffix, middle) is the order every family supports. SPM puts the
suffix first; for the sentinel-token families we use the widely trained
"<PRE><SUF>suffix<MID>prefix" variant, so the middle still follows <MID>.
Mistral/Devstral's format is suffix-first by design ("[SUFFIX]s[PREFIX]p"), so
for that family both orderings produce the same text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class FimStyle:
    name: str
    prefix: str
    suffix: str
    middle: str

    def psm(self, prefix: str, suffix: str) -> str:
        """The prompt whose continuation is the middle, prefix first."""
        if self.name == "mistral":
            return f"{self.suffix}{suffix}{self.prefix}{prefix}"
        return f"{self.prefix}{prefix}{self.suffix}{suffix}{self.middle}"

    def spm(self, prefix: str, suffix: str) -> str:
        """The prompt whose continuation is the middle, suffix first."""
        if self.name == "mistral":
            return self.psm(prefix, suffix)
        return f"{self.prefix}{self.suffix}{suffix}{self.middle}{prefix}"

    def tokens(self) -> tuple[str, ...]:
        return (self.prefix, self.suffix, self.middle)


STYLES: dict[str, FimStyle] = {
    # Qwen2.5-Coder (and our tiny default model).
    "qwen": FimStyle("qwen", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"),
    # StarCoder / StarCoder2 / SantaCoder.
    "starcoder": FimStyle("starcoder", "<fim_prefix>", "<fim_suffix>", "<fim_middle>"),
    # Mistral / Codestral / Devstral: no middle sentinel, generation follows [PREFIX]p.
    "mistral": FimStyle("mistral", "[PREFIX]", "[SUFFIX]", ""),
}


def style(name: str) -> FimStyle:
    """Look a style up by name, with an error that lists the valid ones."""
    try:
        return STYLES[name]
    except KeyError:
        raise ValueError(f"unknown FIM style {name!r}; expected one of {sorted(STYLES)}") from None


def detect(vocabulary: Iterable[str]) -> FimStyle | None:
    """The FIM style whose sentinel tokens are all in a tokenizer's vocabulary."""
    vocab = set(vocabulary)
    for candidate in STYLES.values():
        if all(token in vocab for token in candidate.tokens() if token):
            return candidate
    return None


def fit_to_context(tokenizer: Any, prefix: str, suffix: str, room: int) -> tuple[str, str]:
    """The end of the prefix and the start of the suffix (the code nearest the
    hole) that fit in `room` tokens together, as a server would truncate a long
    file; unchanged when they already fit. The suffix keeps at least a quarter.

    Training, evaluation and serving all cut long FIM rows this way (through
    `fit_around_hole`), so a model is scored and served on the kind of context it
    was trained on."""
    pre = tokenizer(prefix, add_special_tokens=False)["input_ids"]
    suf = tokenizer(suffix, add_special_tokens=False)["input_ids"]
    if len(pre) + len(suf) <= room:
        return prefix, suffix
    keep_suffix = min(len(suf), max(room // 4, room - len(pre)))
    keep_prefix = max(0, room - keep_suffix)
    return (
        tokenizer.decode(pre[len(pre) - keep_prefix :]) if keep_prefix else "",
        tokenizer.decode(suf[:keep_suffix]),
    )


def fit_around_hole(
    tokenizer: Any,
    prefix: str,
    suffix: str,
    limit: int,
    encode: Callable[[str, str], T],
    length: Callable[[T], int] = len,
) -> T | None:
    """`encode(prefix', suffix')` for the end of the prefix and the start of the
    suffix (`fit_to_context`) that make it at most `limit` tokens long, or None
    when not even empty parts fit. For a FIM prompt or row known to be too long:
    `encode` renders it whole (sentinels, and a training row's middle), so the
    room left for the parts is measured, not guessed. Cut parts can tokenize a
    little longer at their edges; then it retries with less room by the overflow."""
    room = limit - length(encode("", ""))
    for _ in range(3):
        if room <= 0:
            return None
        encoded = encode(*fit_to_context(tokenizer, prefix, suffix, room))
        if length(encoded) <= limit:
            return encoded
        room -= length(encoded) - limit
    return None
