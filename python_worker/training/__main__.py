"""Train one curriculum stage from the command line; prints one JSON event per line.

    .venv/bin/python -m python_worker.training \
        --base-model data/models/tiny-elixir --dataset data/datasets/NAME --stage 1 \
        --out data/adapters/RUN/stage1 [--config SETTINGS.json] [--resume] \
        [--init-adapter DIR] [--eval-set FILE.jsonl] [--general-eval FILE.jsonl] [--max-steps N]

Flags override the config file; the config file overrides the worker's field
defaults (`--help-config` lists every setting with its default and help). The
curriculum's per-stage settings live in one place, elixir/config/curriculum.exs:
`mix train --stage N` runs a stage with them (this command is for ad-hoc runs). Ctrl-C cancels:
a checkpoint is saved, and `--resume` continues from it with the same step
count. Exit status: 0 completed, 1 failed, 2 invalid request, 130 cancelled.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from python_worker.job_events import CANCELLED, COMPLETED, Event
from python_worker.training.config import TrainSettings, describe, load_file, merge
from python_worker.training.errors import InvalidRequest
from python_worker.training.job import TrainJob, validate_job


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m python_worker.training", description=__doc__.split("\n", 1)[0])
    p.add_argument("--base-model", help="model directory (from_pretrained)")
    p.add_argument("--dataset", help="dataset directory written by BuildDataset")
    p.add_argument("--stage", type=int, choices=(1, 2, 3))
    p.add_argument("--out", help="output directory of this stage's adapter")
    p.add_argument("--config", help="JSON file of training settings")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    p.add_argument("--init-adapter", default="", help="previous stage's adapter to continue")
    p.add_argument("--eval-set", default="", help="eval JSONL (default DATASET/stageN/eval.jsonl)")
    p.add_argument("--general-eval", default="", help="general-code JSONL for the forgetting check")
    p.add_argument("--max-steps", type=int, default=0, help="override config max_steps")
    p.add_argument("--job-id", default="cli")
    p.add_argument("--help-config", action="store_true", help="list every setting and exit")
    args = p.parse_args(argv)
    if not args.help_config:
        missing = [f for f in ("base_model", "dataset", "stage", "out") if not getattr(args, f)]
        if missing:
            p.error("required: " + ", ".join("--" + m.replace("_", "-") for m in missing))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.help_config:
        for name, default, help_text in describe():
            print(f"{name} (default {default!r}): {help_text}")
        return 0
    try:
        settings = load_file(args.config) if args.config else TrainSettings()
        settings = merge(settings, {"max_steps": args.max_steps})
        job = validate_job(
            TrainJob(
                base_model=args.base_model,
                dataset_dir=args.dataset,
                stage=args.stage,
                output_dir=args.out,
                settings=settings,
                job_id=args.job_id,
                resume=args.resume,
                init_adapter=args.init_adapter,
                general_eval_path=args.general_eval,
                eval_path=args.eval_set,
            )
        )
    except InvalidRequest as exc:
        print(f"invalid request: {exc}", file=sys.stderr)
        return 2

    from python_worker.training.recipe import run_training

    cancel = threading.Event()
    # First Ctrl-C cancels (checkpoint, then stop); a second one kills as usual.
    previous = signal.getsignal(signal.SIGINT)

    def on_sigint(signum, frame):
        cancel.set()
        signal.signal(signal.SIGINT, previous)

    signal.signal(signal.SIGINT, on_sigint)

    def emit(event: Event) -> None:
        print(json.dumps(event.as_dict()), flush=True)

    final = run_training(job, emit, cancel)
    return {COMPLETED: 0, CANCELLED: 130}.get(final, 1)


if __name__ == "__main__":
    sys.exit(main())
