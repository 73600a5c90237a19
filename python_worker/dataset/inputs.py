"""Reading the scraped corpus: input directories, their manifests, and book directories.

The scrapers (mix scrape.hex|github|local|docs) all write one layout:

    DIR/manifest.jsonl          one JSON object per source:
                                {name, version, licenses, sha256, files, path, ...}
    DIR/<path>/                 the kept files of that source
    DIR/<path>/metadata.json    name, version, licenses, links, downloads, ...

`read_inputs` validates all of it up front (the directory, every manifest line,
every package directory) and raises InvalidRequest naming the file and line, so a
bad request fails before any work starts.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from python_worker.dataset.config import BookDir
from python_worker.dataset.errors import InvalidRequest

MANIFEST = "manifest.jsonl"
METADATA = "metadata.json"


@dataclass(frozen=True)
class InputDir:
    path: Path
    manifest_sha256: str
    rows: int
    # A scraper killed mid-append leaves one unterminated, cut-short last line;
    # the scrapers themselves ignore it, and so do we (and say so in the manifest).
    partial_last_line: bool = False


@dataclass
class Source:
    """One package, repository or book: the unit of dedup preference and of the split."""

    name: str
    version: str
    root: Path
    license: str
    kind: str  # "package" or "book"
    input_index: int
    popularity: int = 0
    files: list[tuple[str, int]] = field(default_factory=list)  # (relative path, size)

    @property
    def label(self) -> str:
        """The `source` value in rows: package or repo with its version."""
        return f"{self.name}@{self.version}" if self.version else self.name

    @property
    def split_key(self) -> str:
        """Versions of one package share a split, so none is in both train and eval."""
        return self.name


def read_inputs(dirs: list[str]) -> tuple[list[InputDir], list[Source]]:
    if not dirs:
        raise InvalidRequest("no input directories given (pass at least one --input DIR)")
    inputs: list[InputDir] = []
    sources: list[Source] = []
    for index, raw in enumerate(dirs):
        d = Path(raw)
        if not d.exists():
            raise InvalidRequest(f"input directory {d} does not exist")
        if not d.is_dir():
            raise InvalidRequest(f"input {d} is not a directory")
        manifest = d / MANIFEST
        if not manifest.is_file():
            raise InvalidRequest(f"input directory {d} has no {MANIFEST} (is it a scraper output directory?)")
        data = manifest.read_bytes()
        rows, partial = _parse_manifest(manifest, data)
        seen: set[str] = set()
        for lineno, row in rows:
            rel = row["path"]
            if rel in seen:  # a resumed scrape may list a package twice: same files
                continue
            seen.add(rel)
            sources.append(_source_from_row(d, manifest, lineno, row, index))
        inputs.append(
            InputDir(
                path=d.resolve(),
                manifest_sha256=hashlib.sha256(data).hexdigest(),
                rows=len(rows),
                partial_last_line=partial,
            )
        )
    return inputs, sources


def book_sources(books: list[BookDir], first_index: int) -> list[Source]:
    out: list[Source] = []
    for i, book in enumerate(books):
        d = Path(book.path)
        if not d.is_dir():
            raise InvalidRequest(f"stage3.book_dirs[{i}]: book directory {d} does not exist")
        out.append(
            Source(
                name=book.name or d.resolve().name,
                version="",
                root=d,
                license=book.license,
                kind="book",
                input_index=first_index + i,
            )
        )
    return out


def _parse_manifest(manifest: Path, data: bytes) -> tuple[list[tuple[int, dict[str, Any]]], bool]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidRequest(f"{manifest}: not UTF-8 ({e})") from None
    rows: list[tuple[int, dict[str, Any]]] = []
    lines = text.split("\n")
    partial = False
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{manifest}, line {lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            if lineno == len(lines):  # no newline after it: an append cut short
                partial = True
                continue
            raise InvalidRequest(f"{where}: not valid JSON: {e}") from None
        if not isinstance(row, dict):
            raise InvalidRequest(f"{where}: expected a JSON object, got {type(row).__name__}")
        for key in ("name", "path"):
            if not isinstance(row.get(key), str) or not row[key]:
                raise InvalidRequest(f"{where}: field {key!r} must be a non-empty string")
        _check_type(row, "version", str, where)
        _check_type(row, "sha256", str, where)
        _check_type(row, "files", int, where)
        licenses = row.get("licenses")
        if licenses is not None and not (isinstance(licenses, list) and all(isinstance(x, str) for x in licenses)):
            raise InvalidRequest(f"{where}: field 'licenses' must be a list of strings")
        rel = PurePosixPath(row["path"])
        if rel.is_absolute() or ".." in rel.parts or "\\" in row["path"]:
            raise InvalidRequest(f"{where}: field 'path' must be a relative path inside the input, got {row['path']!r}")
        rows.append((lineno, row))
    if not rows:
        raise InvalidRequest(f"{manifest}: no rows (the scrape kept nothing?)")
    return rows, partial


def _check_type(row: dict[str, Any], key: str, tp: type, where: str) -> None:
    value = row.get(key)
    if value is not None and (not isinstance(value, tp) or isinstance(value, bool)):
        raise InvalidRequest(f"{where}: field {key!r} must be {tp.__name__}, got {value!r}")


def _source_from_row(d: Path, manifest: Path, lineno: int, row: dict[str, Any], index: int) -> Source:
    root = d / row["path"]
    if not root.is_dir():
        raise InvalidRequest(f"{manifest}, line {lineno}: package directory {root} does not exist")
    meta = _metadata(root)
    licenses = row.get("licenses") or meta.get("licenses") or []
    return Source(
        name=row["name"],
        version=row.get("version") or "",
        root=root,
        license=", ".join(licenses) if isinstance(licenses, list) else str(licenses),
        kind="package",
        input_index=index,
        popularity=_popularity(row) or _popularity(meta),
    )


def _metadata(root: Path) -> dict[str, Any]:
    """metadata.json, or {} when missing or unreadable (it only refines preferences)."""
    try:
        meta = json.loads((root / METADATA).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def _popularity(meta: dict[str, Any]) -> int:
    """Downloads (Hex: a number or {"all": n, ...}) or stars (GitHub)."""
    for key in ("downloads", "stars", "stargazers_count"):
        value = meta.get(key)
        if isinstance(value, dict):
            value = value.get("all", sum(v for v in value.values() if isinstance(v, int)))
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return 0


def list_files(source: Source) -> list[tuple[str, int]]:
    """Every regular file under the source (symlinks ignored), sorted by path."""
    out: list[tuple[str, int]] = []
    root = str(source.root)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, root)
        for fn in filenames:
            full = os.path.join(dirpath, fn)
            if os.path.islink(full):
                continue
            rel = fn if rel_dir == "." else f"{rel_dir}/{fn}".replace(os.sep, "/")
            if rel == METADATA and source.kind == "package":
                continue
            try:
                size = os.stat(full).st_size
            except OSError:
                continue
            out.append((rel, size))
    out.sort()
    return out


_VERSION_PART = re.compile(r"\d+|[A-Za-z]+")


def version_key(version: str) -> tuple:
    """Orders 1.10.0 after 1.9.2 and 2.0.0-rc.1 before 2.0.0."""
    main, _, pre = version.partition("-")
    nums = tuple(int(p) if p.isdigit() else 0 for p in _VERSION_PART.findall(main))
    return (nums, 0 if pre else 1, tuple(_VERSION_PART.findall(pre)))


def preference_order(sources: list[Source]) -> list[Source]:
    """Sources in dedup-preference order: the first copy of a file is the one kept.

    Books the user named come first, then packages by popularity (max over a
    package's versions), then newer versions of the same package first.
    """
    pop: dict[str, int] = {}
    for s in sources:
        pop[s.split_key] = max(pop.get(s.split_key, 0), s.popularity)
    ordered = sorted(sources, key=lambda s: (s.label, s.input_index))
    ordered.sort(key=lambda s: version_key(s.version), reverse=True)
    ordered.sort(key=lambda s: (s.kind != "book", -pop[s.split_key], s.split_key))
    return ordered
