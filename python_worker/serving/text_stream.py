"""Streaming text out of a token stream: incremental detokenization and stop sequences.

Both classes are pure (no torch) so they are unit-tested on their own and any
backend that produces token ids one at a time can reuse them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

# Prompt tokens decoded together with the first generated ones, so that decoders
# that drop a leading space at the start of a sequence (SentencePiece) don't.
_CONTEXT_TOKENS = 6
_REPLACEMENT = "\ufffd"


class IncrementalDetokenizer:
    """Turns token ids into text deltas that are final.

    Decoding token by token would split multi-byte characters (a byte-level BPE
    token can be half a UTF-8 sequence) and lose inter-token spacing. Instead we
    decode a small sliding window twice, with and without the newest tokens, and
    emit the difference only once it no longer ends in an incomplete character.
    The window keeps every step O(1) in the length of the output.
    """

    def __init__(self, tokenizer: Any, prompt_ids: Sequence[int]) -> None:
        self._tokenizer = tokenizer
        self._ids: list[int] = list(prompt_ids[-_CONTEXT_TOKENS:])
        self._prefix = 0  # window start
        self._read = len(self._ids)  # end of the tokens already emitted as text

    def _decode(self, ids: list[int]) -> str:
        return self._tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def push(self, token_id: int) -> str:
        """Add one token; returns the text that became final (possibly "")."""
        self._ids.append(token_id)
        return self._advance(final=False)

    def flush(self) -> str:
        """The text still held back (an incomplete character at the very end)."""
        return self._advance(final=True)

    def _advance(self, final: bool) -> str:
        if self._read == len(self._ids):
            return ""
        before = self._decode(self._ids[self._prefix : self._read])
        after = self._decode(self._ids[self._prefix :])
        if len(after) > len(before) and (final or not after.endswith(_REPLACEMENT)):
            self._prefix, self._read = self._read, len(self._ids)
            return after[len(before) :]
        if final:
            self._prefix = self._read = len(self._ids)
        return ""


class StopMatcher:
    """Cuts the text stream before the first stop sequence.

    Text that could be the start of a stop sequence is held back until the next
    delta shows whether it is one, so a client never sees part of a stop string.
    """

    def __init__(self, stops: Iterable[str]) -> None:
        self._stops = tuple(s for s in stops if s)
        self._held = ""

    def push(self, text: str) -> tuple[str, bool]:
        """Returns (text safe to emit, whether a stop sequence was found)."""
        if not self._stops:
            return text, False
        buffer = self._held + text
        # Earlier text was released only when it couldn't start a stop sequence,
        # so any match lies within the buffer.
        hits = [i for i in (buffer.find(s) for s in self._stops) if i >= 0]
        if hits:
            self._held = ""
            return buffer[: min(hits)], True
        keep = self._longest_partial(buffer)
        self._held = buffer[len(buffer) - keep :] if keep else ""
        return buffer[: len(buffer) - keep], False

    def flush(self) -> str:
        """The held-back text, once no more text will come."""
        held, self._held = self._held, ""
        return held

    def _longest_partial(self, buffer: str) -> int:
        best = 0
        for stop in self._stops:
            for size in range(min(len(stop) - 1, len(buffer)), best, -1):
                if buffer.endswith(stop[:size]):
                    best = size
                    break
        return best
