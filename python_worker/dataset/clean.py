"""File-level cleaning: each check returns the drop reason, or None to keep the file.

The checks run cheapest first, and the ones that need no content (extension,
vendored path, size) run before the file is read, so a 2 GB blob costs a stat.
Reasons are short stable names; the manifest counts files and bytes per reason.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from python_worker.dataset.config import CleanConfig

LANGUAGES = {
    ".ex": "elixir",
    ".exs": "elixir",
    ".erl": "erlang",
    ".hrl": "erlang",
    ".md": "markdown",
    ".markdown": "markdown",
    ".cheatmd": "markdown",
    ".livemd": "markdown",
}
REPLAY_LANGUAGES = {".py": "python"}

# Bytes other than \t \n \f \r below 0x20, and DEL: rare in text, common in binaries.
_CONTROL = bytes(b for b in range(32) if b not in (9, 10, 12, 13)) + b"\x7f"
_CONTROL_TABLE = bytes.maketrans(b"", b"")
# ASCII bytes that are not letters or digits; bytes >= 0x80 (non-ASCII letters,
# mostly) count as alphanumeric. Byte-level so the count runs at memory speed.
_NON_ALNUM_ASCII = bytes(b for b in range(128) if not chr(b).isalnum())


def language_of(path: str, replay: bool = False) -> str | None:
    """The language of a corpus file by extension (replay files: Python only)."""
    table = REPLAY_LANGUAGES if replay else LANGUAGES
    return table.get(PurePosixPath(path).suffix.lower())


class Cleaner:
    def __init__(self, config: CleanConfig) -> None:
        self.config = config
        markers = "|".join(f"(?:{m})" for m in config.generated_markers)
        self._generated = re.compile(markers, re.IGNORECASE) if markers else None
        self._vendored = [PurePosixPath(v).parts for v in config.vendored_dirs]

    def check_path(self, rel_path: str, size: int, replay: bool = False) -> str | None:
        """Checks that need only the path and size."""
        if language_of(rel_path, replay) is None:
            return "unsupported_type"
        parts = PurePosixPath(rel_path).parts
        for prefix in self._vendored:
            n = len(prefix)
            if any(parts[i : i + n] == prefix for i in range(len(parts) - n)):
                return "vendored"
        if size > self.config.max_file_bytes:
            return "too_large"
        return None

    def decode(self, data: bytes) -> tuple[str | None, str | None]:
        """(text, None) or (None, reason) for bytes that are not clean UTF-8 text."""
        head = data[:8192]
        if b"\x00" in head:
            return None, "binary"
        controls = len(head) - len(head.translate(_CONTROL_TABLE, _CONTROL))
        if head and controls / len(head) > 0.05:
            return None, "binary"
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return None, "not_utf8"
        text = text.removeprefix("\ufeff")
        # One line-ending convention, so exact dedup and FIM offsets agree.
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        return text, None

    def check_text(self, text: str) -> str | None:
        """Content checks on decoded text."""
        stripped_len = len(text) - sum(text.count(c) for c in " \t\n\f\v")
        if stripped_len == 0:
            return "empty"
        if stripped_len < self.config.min_chars:
            return "tiny"
        lines = text.split("\n")
        if max(map(len, lines)) > self.config.max_line_chars:
            return "long_lines"
        if len(text) / len(lines) > self.config.max_mean_line_chars:
            return "long_lines"
        if self._generated is not None:
            head = "\n".join(lines[: self.config.header_lines])
            if self._generated.search(head):
                return "generated"
        data = text.encode("utf-8", "surrogatepass")
        alnum = len(data.translate(None, _NON_ALNUM_ASCII))
        if alnum / len(data) < self.config.min_alnum_share:
            return "low_alnum"
        return None
