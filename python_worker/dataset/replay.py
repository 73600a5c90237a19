"""Replay data against forgetting: general, non-Elixir code mixed into every stage.

The default source is the standard library of the interpreter running the build
(its .py files, without tests and vendored packages): real, permissively
licensed (PSF-2.0) code that is on every machine. Rows are marked
`source: "replay"` with `path` relative to a `python3.X/` prefix.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path

from python_worker.dataset import split
from python_worker.dataset.errors import InvalidRequest

LICENSE = "PSF-2.0"
_SKIP_DIRS = {
    "test",
    "tests",
    "idle_test",
    "site-packages",
    "dist-packages",
    "__pycache__",
    "lib2to3",
}


def resolve_dir(spec: str) -> Path | None:
    if spec == "none":
        return None
    if spec == "auto":
        return Path(sysconfig.get_paths()["stdlib"])
    p = Path(spec)
    if not p.is_dir():
        raise InvalidRequest(f"replay.dir: {p} is not a directory")
    return p


def prefix(root: Path, spec: str) -> str:
    if spec == "auto":
        return f"python{sys.version_info.major}.{sys.version_info.minor}"
    return root.resolve().name


def list_files(root: Path, max_bytes: int, seed: int) -> list[tuple[str, int]]:
    """(relative path, size) of the replay files, in a seeded order."""
    out: list[tuple[str, int]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith(("config-", ".")))
        rel_dir = os.path.relpath(dirpath, root)
        for fn in filenames:
            if not fn.endswith(".py"):
                continue
            full = os.path.join(dirpath, fn)
            if os.path.islink(full):
                continue
            size = os.stat(full).st_size
            if 0 < size <= max_bytes:
                rel = fn if rel_dir == "." else f"{rel_dir}/{fn}".replace(os.sep, "/")
                out.append((rel, size))
    out.sort(key=lambda item: split.rank(seed, item[0]))
    return out
