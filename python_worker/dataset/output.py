"""The output directory: written under a temporary name, renamed when complete.

Readers never see a half-built dataset: OUT appears (or is replaced) in one
rename, after every file in it is flushed. A crashed or cancelled build leaves
only its `.OUT.tmp-*` sibling, which the next build removes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import IO

from python_worker.dataset.errors import InvalidRequest

STAGES = (1, 2, 3)
SPLITS = ("train", "eval")


def check_out_dir(out: Path) -> None:
    """Refuse to replace a directory that is not a previous build (would lose data)."""
    if out.exists():
        if not out.is_dir():
            raise InvalidRequest(f"output {out} exists and is not a directory")
        if any(out.iterdir()) and not (out / "manifest.json").is_file():
            raise InvalidRequest(
                f"output directory {out} is not empty and holds no manifest.json from a "
                "previous build; refusing to replace it"
            )
    # Nothing is created here (this runs before any work): just check that the
    # nearest existing ancestor is a directory we can write into.
    ancestor = out.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        raise InvalidRequest(f"cannot create output {out}: {ancestor} is not a writable directory")


class StagingDir:
    def __init__(self, out: Path) -> None:
        self.out = out
        out.parent.mkdir(parents=True, exist_ok=True)
        for stale in out.parent.glob(f".{out.name}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        self.path = out.parent / f".{out.name}.tmp-{os.getpid()}"
        self.path.mkdir(parents=True)
        self._files: dict[tuple[int, str], IO[str]] = {}
        for stage in STAGES:
            (self.path / f"stage{stage}").mkdir()
            for split in SPLITS:
                # Long-lived handles, closed in close_files/abort.
                self._files[(stage, split)] = open(  # noqa: SIM115
                    self.path / f"stage{stage}" / f"{split}.jsonl",
                    "w",
                    encoding="utf-8",
                    newline="\n",
                )

    def write(self, stage: int, split: str, line: str) -> int:
        """Append one JSONL row; returns the bytes written."""
        data = line + "\n"
        self._files[(stage, split)].write(data)
        return len(data.encode("utf-8"))

    def move_rows(self, stage: int, chosen: set[int]) -> int:
        """Move the train rows at the `chosen` indices (0-based, in write order) to the
        end of eval; returns the bytes moved. The train file is rewritten under a
        temporary name and renamed, like every output."""
        train = self.path / f"stage{stage}" / "train.jsonl"
        self._files[(stage, "train")].close()
        self._files[(stage, "eval")].flush()
        kept = train.with_name("train.jsonl.tmp")
        moved = 0
        with train.open(encoding="utf-8", newline="\n") as src, kept.open("w", encoding="utf-8", newline="\n") as dst:
            for i, line in enumerate(src):
                if i in chosen:
                    self._files[(stage, "eval")].write(line)
                    moved += len(line.encode("utf-8"))
                else:
                    dst.write(line)
        os.replace(kept, train)
        self._files[(stage, "train")] = open(train, "a", encoding="utf-8", newline="\n")  # noqa: SIM115
        return moved

    def close_files(self) -> None:
        for fh in self._files.values():
            fh.flush()
            os.fsync(fh.fileno())
            fh.close()
        self._files.clear()

    def commit(self) -> Path:
        """Swap the staging dir in for OUT (a previous build is moved aside first)."""
        self.close_files()
        old = None
        if self.out.exists():
            old = self.out.parent / f".{self.out.name}.old-{os.getpid()}"
            os.rename(self.out, old)
        os.rename(self.path, self.out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.out

    def abort(self) -> None:
        for fh in self._files.values():
            fh.close()
        self._files.clear()
        shutil.rmtree(self.path, ignore_errors=True)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
