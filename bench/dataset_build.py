"""Dataset build throughput, and near-dedup per core against plain datasketch.

    .venv/bin/python bench/dataset_build.py [--mb 200] [--dedup-mb 64] [--rounds 3] [--workers 0] [--no-save]

1. Generates (once; cached under data/bench/corpus-<MB>mb-v1/) a scraper-layout
   corpus of at least --mb MB, synthesised from the real Erlang sources in
   /usr/lib/erlang/lib/*/src/*.erl: Erlang files with renamed identifiers,
   reordered forms and changed numbers; Elixir modules with docs, doctests,
   specs, pipes and case clauses built from those files' function names and
   comment prose; Markdown guides; and ~12% newer versions of earlier packages
   (exact and near duplicates), as a real Hex scrape has.
2. Builds the dataset with the default config on all cores (or --workers),
   timing raw input -> final output and sampling the peak RSS of the whole
   process tree (coordinator + workers).
3. Near-dedup alone, like for like, on the first --dedup-mb MB of the same files
   (the size actually timed is reported as neardup_timed_mb):
   - ours in ONE process (dedup.Signer + dedup.NearDupIndex, no worker pool);
   - a plain datasketch loop on the same input: the same token 5-gram hashes
     (lexer.shingle_hashes32), MinHash(num_perm, seed, hashfunc=int).update_batch
     (which gives signatures identical to ours; a unit test checks it),
     MinHashLSH with the same threshold and permutations (so the same bands),
     and the same confirmation of candidates by estimated Jaccard;
   alternating for --rounds rounds and reporting the medians. Both must find
   the same duplicates. The signing step alone (precomputed shingle hashes;
   shingling is shared code and most of the time) is compared too. Ours on the
   worker pool is timed as well and reported as all-core MB/s and that figure
   divided by the workers used.

Ends with emit("dataset_build", ...): one JSON line, saved to
bench/results/dataset_build.json (not with --no-save).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import re
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Self

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.results import emit
from python_worker.dataset import BuildRequest, DatasetConfig, dedup, lexer
from python_worker.dataset.build import build, worker_payload
from python_worker.dataset.pool import ProcessPool, available_cores
from python_worker.dataset.tokens import resolve

ERLANG_SRC = Path("/usr/lib/erlang/lib")
BENCH_DIR = ROOT / "data" / "bench"
_ATOM = re.compile(r"\b([a-z][a-z0-9_]{3,})\(")
_COMMENT = re.compile(r"^%+\s?(.*[a-zA-Z].*)$", re.MULTILINE)
_INT = re.compile(r"\b\d{2,}\b")


# ---------------------------------------------------------------------------
# Corpus generation
# ---------------------------------------------------------------------------


def _sources() -> list[str]:
    files = sorted(ERLANG_SRC.glob("*/src/*.erl"))
    if not files:
        sys.exit(f"no Erlang sources under {ERLANG_SRC}/*/src (apt-get install erlang-src)")
    return [f.read_bytes().decode("utf-8", "replace") for f in files]


def _mutate_erlang(src: str, rng: random.Random, words: list[str]) -> str:
    names = sorted(set(_ATOM.findall(src)))
    rename = {n: f"{n}_{rng.choice(words)}" for n in rng.sample(names, k=len(names) // 3)}
    if rename:
        pattern = re.compile(r"\b(" + "|".join(map(re.escape, rename)) + r")\(")
        src = pattern.sub(lambda m: rename[m.group(1)] + "(", src)
    forms = src.split("\n\n")
    head, body = forms[:2], forms[2:]
    rng.shuffle(body)
    src = "\n\n".join(head + body)
    return _INT.sub(lambda m: str(int(m.group()) + rng.randint(1, 99)), src)


def _prose(comments: list[str], rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(comments).strip() for _ in range(n)).strip() or "Does the work."


def _elixir_module(name: str, funcs: list[str], comments: list[str], rng: random.Random) -> str:
    lines = [
        f"defmodule {name} do",
        '  @moduledoc """',
        f"  {_prose(comments, rng, 4)}",
        '  """',
        "",
    ]
    for i, f in enumerate(funcs):
        k = rng.randint(2, 97)
        arg = rng.choice(["items", "list", "values", "entries"])
        lines += [
            '  @doc """',
            f"  {_prose(comments, rng, 2)}",
            "",
            "  ## Examples",
            "",
            f"      iex> {name}.{f}([1, 2, 3])",
            f"      {[x * k for x in (1, 2, 3)]}",
            '  """',
            f"  @spec {f}([integer()]) :: [integer()]",
            f"  def {f}({arg}) when is_list({arg}) do",
            f"    {arg}",
            f"    |> Enum.map(&(&1 * {k}))",
            f"    |> Enum.reject(&(&1 == {rng.randint(0, 999)}))",
            "  end",
            "",
            f"  defp {f}_step({{:ok, value}}, acc) do",
            "    case value do",
            f"      {rng.randint(0, 9)} -> {{:halt, acc}}",
            f"      other when is_integer(other) -> {{:cont, [other * {i + 2} | acc]}}",
            "      _ -> {:cont, acc}",
            "    end",
            "  end",
            "",
        ]
    lines.append("end")
    return "\n".join(lines) + "\n"


def _guide(title: str, comments: list[str], funcs: list[str], rng: random.Random) -> str:
    parts = [f"# {title}", "", _prose(comments, rng, 5), ""]
    for f in funcs[:4]:
        parts += [
            f"## Using {f}",
            "",
            _prose(comments, rng, 4),
            "",
            "```elixir",
            f"result = {title}.{f}([4, 5, 6])",
            "```",
            "",
            "```elixir",
            f"iex> length({title}.{f}([1]))",
            "1",
            "```",
            "",
        ]
    return "\n".join(parts)


def generate(out: Path, mb: int, seed: int = 0) -> None:
    """Write the corpus into out/ (manifest.jsonl + one dir per package)."""
    rng = random.Random(seed)
    sources = _sources()
    comments = [c for s in sources for c in _COMMENT.findall(s) if len(c) > 30][:200_000]
    words = sorted({w for s in sources[:200] for w in _ATOM.findall(s)})
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    target = mb * 1_000_000
    written = 0
    rows: list[dict] = []
    packages: list[tuple[str, dict[str, str]]] = []
    n = 0
    while written < target:
        n += 1
        if packages and rng.random() < 0.12:
            # A newer release of an earlier package: most files identical or nearly so.
            name, files = rng.choice(packages)
            version = f"1.{n}.0"
            new = {}
            for path, text in files.items():
                r = rng.random()
                new[path] = text if r < 0.5 else text.replace("\n\n", "\n\n\n", 3) if r < 0.8 else text + "\n"
        else:
            name, version = f"pkg{n:05d}", f"0.{n % 7}.{n % 5}"
            mod = "".join(p.capitalize() for p in rng.sample(words, 2))
            new = {}
            for i in range(rng.randint(3, 16)):
                kind = rng.random()
                src = rng.choice(sources)
                if kind < 0.45:
                    new[f"src/{name}_{i}.erl"] = _mutate_erlang(src, rng, words)
                elif kind < 0.9:
                    funcs = sorted(set(_ATOM.findall(src)))[: rng.randint(3, 12)] or ["run"]
                    new[f"lib/{name}/mod_{i}.ex"] = _elixir_module(f"{mod}.M{i}", funcs, comments, rng)
                else:
                    funcs = sorted(set(_ATOM.findall(src)))[:4] or ["run"]
                    new[f"guides/{i:02d}-guide.md"] = _guide(mod, comments, funcs, rng)
            packages.append((name, new))
        rel = f"{name}-{version}"
        for path, text in new.items():
            p = tmp / rel / path
            p.parent.mkdir(parents=True, exist_ok=True)
            data = text.encode("utf-8")
            p.write_bytes(data)
            written += len(data)
        meta = {
            "name": name,
            "version": version,
            "licenses": ["Apache-2.0"],
            "downloads": {"all": rng.randint(0, 10**6)},
        }
        (tmp / rel / "metadata.json").write_text(json.dumps(meta))
        rows.append({**meta, "sha256": "", "files": len(new), "path": rel})
    (tmp / "manifest.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def corpus(mb: int) -> Path:
    out = BENCH_DIR / f"corpus-{mb}mb-v1"
    if not (out / "manifest.jsonl").is_file():
        print(f"generating a {mb} MB corpus in {out} ...", file=sys.stderr, flush=True)
        # In a child process: generation holds the whole corpus in memory, and
        # the allocator would keep much of it, inflating this process's peak RSS.
        child = multiprocessing.get_context("spawn").Process(target=generate, args=(out, mb))
        child.start()
        child.join()
        if child.exitcode != 0:
            sys.exit(f"generating the corpus failed (exit code {child.exitcode})")
    return out


# ---------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------


class PeakRss:
    """Samples the RSS of this process plus its children every 50 ms."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for p in [me, *me.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(0.05)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _files(root: Path, limit_bytes: int) -> list[Path]:
    out, used = [], 0
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.suffix in (".ex", ".erl", ".md"):
            out.append(p)
            used += p.stat().st_size
            if used >= limit_bytes:
                break
    return out


def near_dedup_pool(files: list[Path], pool: ProcessPool) -> tuple[float, int]:
    """Signatures on the pool's processes, LSH in this one (as the scan pass does)."""
    from python_worker.dataset import file_tasks

    cfg = DatasetConfig().dedup
    t0 = time.perf_counter()
    index = dedup.NearDupIndex(cfg.threshold, cfg.num_perm, cfg.minhash_seed)
    chunks = [[str(p) for p in files[i : i + 32]] for i in range(0, len(files), 32)]
    dups = 0
    for results in pool.map(file_tasks.sign_paths, chunks):
        for _size, sig in results:
            if sig is not None and index.seen(sig):
                dups += 1
    return time.perf_counter() - t0, dups


def near_dedup_ours(files: list[Path]) -> tuple[float, int]:
    """Our signer and index in this one process: the per-core figure."""
    cfg = DatasetConfig().dedup
    t0 = time.perf_counter()
    signer = dedup.Signer(cfg.shingle, dedup.permutations(cfg.num_perm, cfg.minhash_seed))
    index = dedup.NearDupIndex(cfg.threshold, cfg.num_perm, cfg.minhash_seed)
    dups = 0
    for p in files:
        sig = signer.sign(p.read_bytes().decode("utf-8", "replace"))
        if sig is not None and index.seen(sig):
            dups += 1
    return time.perf_counter() - t0, dups


def near_dedup_plain(files: list[Path]) -> tuple[float, int]:
    """The same near-dedup written as a plain datasketch loop, in one process."""
    from datasketch import MinHash, MinHashLSH

    cfg = DatasetConfig().dedup
    t0 = time.perf_counter()
    lsh = MinHashLSH(threshold=cfg.threshold, num_perm=cfg.num_perm)
    kept: dict[int, MinHash] = {}
    dups = 0
    for i, p in enumerate(files):
        hashes = lexer.shingle_hashes32(p.read_bytes().decode("utf-8", "replace"), cfg.shingle)
        if len(hashes) == 0:
            continue
        m = MinHash(num_perm=cfg.num_perm, seed=cfg.minhash_seed, hashfunc=int)
        m.update_batch(hashes.tolist())
        if any(m.jaccard(kept[k]) >= cfg.threshold for k in lsh.query(m)):
            dups += 1
        else:
            lsh.insert(i, m, check_duplication=False)
            kept[i] = m
    return time.perf_counter() - t0, dups


def signing_only(files: list[Path]) -> tuple[float, float]:
    """Seconds to sign precomputed shingle hashes: (ours, datasketch update_batch).

    The shingling (lexer) is the same code on both sides and most of the time;
    this isolates the part where the two differ.
    """
    from datasketch import MinHash

    cfg = DatasetConfig().dedup
    hashes = [lexer.shingle_hashes32(p.read_bytes().decode("utf-8", "replace"), cfg.shingle) for p in files]
    hashes = [h for h in hashes if len(h)]
    signer = dedup.Signer(cfg.shingle, dedup.permutations(cfg.num_perm, cfg.minhash_seed))
    t0 = time.perf_counter()
    for h in hashes:
        signer.sign_hashes(h)
    ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    for h in hashes:
        MinHash(num_perm=cfg.num_perm, seed=cfg.minhash_seed, hashfunc=int).update_batch(h.tolist())
    return ours, time.perf_counter() - t0


def _median(runs: list[tuple[float, int]]) -> tuple[float, int]:
    return sorted(runs)[len(runs) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mb", type=int, default=200, help="corpus size in MB (cached per size)")
    ap.add_argument("--dedup-mb", type=int, default=64, help="MB used for the near-dedup comparison")
    ap.add_argument("--workers", type=int, default=0, help="0 = all cores")
    ap.add_argument("--rounds", type=int, default=3, help="near-dedup rounds (medians)")
    ap.add_argument("--keep", action="store_true", help="keep the built dataset under data/bench/")
    ap.add_argument("--no-save", action="store_true", help="print only (smoke runs at toy sizes)")
    args = ap.parse_args()
    workers = args.workers or available_cores()

    root = corpus(args.mb)
    input_bytes = sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and p.name != "metadata.json")
    out = BENCH_DIR / f"dataset-{args.mb}mb"
    shutil.rmtree(out, ignore_errors=True)
    config = DatasetConfig(workers=workers)
    print(
        f"building {input_bytes / 1e6:.0f} MB on {workers} workers ...",
        file=sys.stderr,
        flush=True,
    )
    with PeakRss() as rss:
        t0 = time.perf_counter()
        result = build(
            BuildRequest(inputs=[str(root)], out_dir=str(out), config=config),
            _progress,
            threading.Event(),
        )
        build_s = time.perf_counter() - t0
    out_bytes = sum(v["bytes"] for s in result.manifest["stages"].values() for v in s.values())

    files = _files(root, args.dedup_mb * 1_000_000)
    dedup_mb = sum(p.stat().st_size for p in files) / 1e6
    print(
        f"near-dedup on {dedup_mb:.0f} MB ({len(files)} files): ours in one process, plain datasketch, "
        f"ours on {workers} workers ...",
        file=sys.stderr,
        flush=True,
    )
    # Alternate and keep the medians: these machines are shared and noisy.
    payload = worker_payload(DatasetConfig(), 0, "regex", None)
    ours_runs, plain_runs, pool_runs = [], [], []
    with ProcessPool(workers, payload) as pool:  # started before any clock runs
        for _ in range(args.rounds):
            ours_runs.append(near_dedup_ours(files))
            plain_runs.append(near_dedup_plain(files))
            pool_runs.append(near_dedup_pool(files, pool))
    sign_ours_s, sign_plain_s = signing_only(files)
    ours_s, ours_dups = _median(ours_runs)
    plain_s, plain_dups = _median(plain_runs)
    pool_s, pool_dups = _median(pool_runs)
    if not args.keep:
        shutil.rmtree(out, ignore_errors=True)

    ours, plain, pooled = dedup_mb / ours_s, dedup_mb / plain_s, dedup_mb / pool_s
    emit(
        "dataset_build",
        {
            "corpus_mb": args.mb,
            "input_mb": round(input_bytes / 1e6, 1),
            "output_mb": round(out_bytes / 1e6, 1),
            "files": result.manifest["files"]["scanned"],
            "files_kept": result.manifest["files"]["kept"],
            "rows": sum(v["rows"] for s in result.manifest["stages"].values() for v in s.values()),
            "workers": workers,
            "tokenizer": Path(resolve(config.tokenizer)).parent.name,
            "build_s": round(build_s, 1),
            "build_mb_per_s": round(input_bytes / 1e6 / build_s, 2),
            "peak_rss_mb": round(rss.peak / 1e6),
            "neardup_timed_mb": round(dedup_mb, 1),
            "neardup_timed_files": len(files),
            "neardup_rounds": args.rounds,
            "neardup_one_process_mb_per_s": round(ours, 2),
            "baseline_datasketch_one_process_mb_per_s": round(plain, 2),
            "neardup_speedup_per_core": round(ours / plain, 2),
            "signing_only_speedup": round(sign_plain_s / sign_ours_s, 2),
            "neardup_all_cores_mb_per_s": round(pooled, 2),
            "neardup_all_cores_per_worker_mb_per_s": round(pooled / workers, 2),
            "neardup_dups": ours_dups,
            "baseline_neardup_dups": plain_dups,
            "neardup_same_dups": ours_dups == plain_dups == pool_dups,
        },
        save=not args.no_save,
    )


_last = [0.0]


def _progress(p: object) -> None:
    now = time.monotonic()
    if now - _last[0] >= 5:
        _last[0] = now
        print(
            f"  [{p.elapsed_ms / 1000:6.0f}s] {p.phase} {p.message}",
            file=sys.stderr,
            flush=True,
        )  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
