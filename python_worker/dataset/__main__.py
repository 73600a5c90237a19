"""Build the training dataset from the command line.

    .venv/bin/python -m python_worker.dataset --input data/raw/hex --input data/raw/github \\
        --out data/datasets/NAME [--config FILE] [--seed N] [--eval-file F.jsonl] \\
        [--book DIR] [--workers N]

    .venv/bin/python -m python_worker.dataset --explain-config   # every config field

Progress goes to stderr; the last stdout line is a JSON summary. Exit status:
0 built, 2 invalid request (the message names the problem), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading

from python_worker.dataset.build import BuildRequest, build
from python_worker.dataset.config import (
    BookDir,
    DatasetConfig,
    explain,
    load_config,
)
from python_worker.dataset.errors import InvalidRequest
from python_worker.job_events import LOG, Event
from python_worker.jobs import Cancelled


def _print_progress(e: Event) -> None:
    if e.kind == LOG:
        print(f"[{e.phase}] {e.message}", file=sys.stderr, flush=True)
        return
    pct = f" {100 * e.step / e.total_steps:5.1f}%" if e.total_steps else ""
    eta = f" eta {e.eta_ms / 1000:.0f}s" if e.eta_ms else ""
    print(
        f"[{e.elapsed_ms / 1000:7.1f}s] {e.phase:7}{pct} {e.message}{eta}",
        file=sys.stderr,
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m python_worker.dataset", description=__doc__.split("\n")[0])
    ap.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="DIR",
        help="scraper output dir (repeatable)",
    )
    ap.add_argument("--out", metavar="DIR", help="output dataset directory")
    ap.add_argument("--config", metavar="FILE", help="builder config (.json or .toml)")
    ap.add_argument("--seed", type=int, help="overrides the config's seed")
    ap.add_argument(
        "--eval-file",
        action="append",
        default=[],
        metavar="F",
        help="extra eval JSONL (repeatable)",
    )
    ap.add_argument(
        "--book",
        action="append",
        default=[],
        metavar="DIR",
        help="Markdown book/guide dir (repeatable)",
    )
    ap.add_argument("--workers", type=int, help="worker processes (default: all cores)")
    ap.add_argument(
        "--explain-config",
        action="store_true",
        help="print every config field and exit",
    )
    args = ap.parse_args(argv)

    if args.explain_config:
        print("\n".join(explain()))
        return 0
    try:
        config = load_config(args.config) if args.config else DatasetConfig()
        if args.workers is not None:
            config.workers = args.workers
        config.stage3.book_dirs += [BookDir(path=b) for b in args.book]
        if not args.out:
            raise InvalidRequest("--out DIR is required")
        request = BuildRequest(
            inputs=args.input,
            out_dir=args.out,
            config=config,
            seed=args.seed,
            eval_files=args.eval_file,
        )
        cancel = threading.Event()
        try:
            result = build(request, _print_progress, cancel)
        except KeyboardInterrupt:
            cancel.set()
            raise
    except InvalidRequest as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Cancelled):
        print("interrupted; nothing was written", file=sys.stderr)
        return 130
    m = result.manifest
    summary = {
        "out_dir": str(result.out_dir),
        "elapsed_s": round(result.elapsed_s, 2),
        "files_scanned": m["files"]["scanned"],
        "files_kept": m["files"]["kept"],
        "rows": {stage: {sp: v["rows"] for sp, v in splits.items()} for stage, splits in m["stages"].items()},
        "tokens": {stage: {sp: v["tokens"] for sp, v in splits.items()} for stage, splits in m["stages"].items()},
    }
    print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
