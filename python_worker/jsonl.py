"""Reading JSONL files: one JSON object per line, blank lines skipped.

Shared by the dataset builder (eval files) and training (dataset splits). The
callers word their own errors, since each names the file the way its user
knows it (an eval file, a request field, a dataset split).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

BadLine = Callable[[int, json.JSONDecodeError | None], Exception]
"""Builds the error for a bad line: (line number, the decode error, or None for
valid JSON that is not an object)."""


def read_objects(path: Path, bad_line: BadLine) -> Generator[tuple[int, dict[str, Any]], None, None]:
    """(line number, row) for every non-blank line of a UTF-8 JSONL file.

    A line that is not JSON, or is JSON but not an object, raises
    `bad_line(lineno, error)` (without chaining the decode error).
    """
    with Path(path).open("r", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise bad_line(lineno, exc) from None
            if not isinstance(row, dict):
                raise bad_line(lineno, None)
            yield lineno, row
