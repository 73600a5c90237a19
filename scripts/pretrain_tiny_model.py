"""Pretrain the tiny model on code that is on every machine here, so it knows code
but not Elixir: the base that the curriculum then teaches Elixir.

    .venv/bin/python scripts/pretrain_tiny_model.py                      # -> models/tiny-code
    .venv/bin/python scripts/pretrain_tiny_model.py --out DIR --tokens 200000 --force

Data (read from the machine, never downloaded):
  * OTP's Erlang sources from Debian's erlang-src (/usr/lib/erlang/lib/*/src/*.erl);
  * the Python standard library of the interpreter running this script
    (site-packages excluded);
  * never Elixir, so that stage 1 has something to teach, and the Python loss
    can show what the curriculum makes the model forget.

The architecture and tokenizer are those of scripts/make_tiny_model.py (a 4-layer
Qwen2 with a byte-level BPE trained on Elixir docs and Erlang), with tied input
and output embeddings, saved in bfloat16 so the weights fit in the repository.

Training is seeded and deterministic on a given machine: files are split into
train and held-out by a hash of their path, the packed blocks are shuffled with
the seed, and one fixed token budget (`--tokens`) sets the number of steps.
Progress (step, loss, tokens/s, ETA) goes to stderr. The output directory gets
the model, its tokenizer, `pretrain.json` (data, token counts, held-out losses
before and after, time) and a README.md card with the same facts. It is
written to a temporary sibling directory and renamed into place.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import importlib.util
import json
import math
import os
import platform
import shutil
import sys
import sysconfig
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "models" / "tiny-code"
ERLANG_SOURCES = "/usr/lib/erlang/lib/*/src/*.erl"
# One file in HELD_OUT_EVERY (by a hash of its path) is held out for eval loss.
HELD_OUT_EVERY = 50


@dataclass
class Settings:
    tokens: int = 4_000_000
    seq_len: int = 256
    batch_size: int = 16
    learning_rate: float = 3e-3
    warmup_ratio: float = 0.05
    weight_decay: float = 0.1
    seed: int = 0
    eval_tokens: int = 40_000  # per held-out set


@dataclass
class Card:
    """What the model card and pretrain.json report."""

    settings: dict[str, Any]
    files: dict[str, int] = field(default_factory=dict)  # training files per language
    train_tokens_available: dict[str, int] = field(default_factory=dict)
    tokens_trained: int = 0
    steps: int = 0
    loss_before: dict[str, float] = field(default_factory=dict)
    loss_after: dict[str, float] = field(default_factory=dict)
    final_train_loss: float = 0.0
    seconds: float = 0.0
    tokens_per_second: float = 0.0
    machine: str = field(default_factory=lambda: f"{platform.machine()}, {os.cpu_count()} cores")
    command: str = ""


class PretrainError(Exception):
    """A precondition failed; the message says what to do."""


def load_make_tiny_model() -> ModuleType:
    """scripts/make_tiny_model.py as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("make_tiny_model", REPO / "scripts" / "make_tiny_model.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def python_sources() -> list[Path]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    return sorted(p for p in stdlib.rglob("*.py") if "site-packages" not in p.parts and "dist-packages" not in p.parts)


def erlang_sources() -> list[Path]:
    return sorted(Path(p) for p in glob.glob(ERLANG_SOURCES))


def held_out(path: Path) -> bool:
    return (
        int(hashlib.sha1(str(path.name).encode() + str(path.parent.name).encode()).hexdigest(), 16) % HELD_OUT_EVERY
        == 0
    )


def tokenize_files(tokenizer: Any, paths: list[Path], limit: int | None = None) -> list[int]:
    """Token ids of the files, each followed by end-of-text, up to `limit` tokens."""
    ids: list[int] = []
    eos = tokenizer.eos_token_id
    for path in paths:
        text = path.read_bytes().decode("utf-8", errors="replace")
        ids.extend(tokenizer(text, add_special_tokens=False)["input_ids"])
        ids.append(eos)
        if limit is not None and len(ids) >= limit:
            return ids[:limit]
    return ids


def blocks(ids: list[int], seq_len: int) -> Any:
    import torch

    count = len(ids) // seq_len
    return torch.tensor(ids[: count * seq_len], dtype=torch.long).view(count, seq_len)


def mean_loss(model: Any, data: Any, batch_size: int) -> float:
    """Mean next-token loss over every block of `data`."""
    import torch

    model.eval()
    total, count = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(data), batch_size):
            batch = data[start : start + batch_size]
            out = model(input_ids=batch, labels=batch)
            total += float(out.loss) * len(batch)
            count += len(batch)
    model.train()
    return total / max(count, 1)


def learning_rate(step: int, steps: int, settings: Settings) -> float:
    """Linear warmup, then cosine decay to a tenth of the peak."""
    warmup = max(1, int(steps * settings.warmup_ratio))
    if step < warmup:
        return settings.learning_rate * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return settings.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def pretrain(
    out: Path,
    settings: Settings,
    *,
    force: bool = False,
    tokenizer_dir: Path | None = None,
    elixir_eval: bool = True,
    log_every: int = 20,
) -> Card | None:
    """Pretrain into `out`; returns the card, or None when a complete model was already there.

    `tokenizer_dir` reuses the tokenizer of a model built by make_tiny_model.py
    (the same one this would train, minus the wait); `elixir_eval` measures the
    loss on the Elixir docs too (it needs `elixir`)."""
    import torch

    tiny = load_make_tiny_model()
    out = out.resolve()
    if tiny.is_complete(out) and not force:
        return None
    started = time.monotonic()
    torch.manual_seed(settings.seed)

    erlang, python = erlang_sources(), python_sources()
    if not erlang:
        raise PretrainError(f"no Erlang sources at {ERLANG_SOURCES}: install Debian's erlang-src")
    if not python:
        raise PretrainError("no Python standard library sources found")
    if tokenizer_dir is not None:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    else:
        print("training the tokenizer (as scripts/make_tiny_model.py does)", file=sys.stderr)
        tokenizer = tiny.train_tokenizer(tiny.collect_corpus(None, 4_000_000), 8192)

    card = Card(settings=asdict(settings), command=" ".join([Path(sys.argv[0]).name, *sys.argv[1:]]))
    # Each language gives half the budget; the files are read in a seeded order.
    train_ids: list[int] = []
    eval_sets: dict[str, Any] = {}
    for name, paths in (("erlang", erlang), ("python", python)):
        train_paths = [p for p in paths if not held_out(p)]
        eval_paths = [p for p in paths if held_out(p)]
        order = torch.randperm(len(train_paths), generator=torch.Generator().manual_seed(settings.seed)).tolist()
        ids = tokenize_files(tokenizer, [train_paths[i] for i in order], limit=settings.tokens // 2 + settings.seq_len)
        card.files[name] = len(train_paths)
        card.train_tokens_available[name] = len(ids)
        train_ids.extend(ids)
        eval_sets[name] = blocks(tokenize_files(tokenizer, eval_paths, limit=settings.eval_tokens), settings.seq_len)
    docs = tiny.elixir_docs() if elixir_eval else ""
    if docs:  # Elixir was never trained on: its loss shows what the base does not know
        eval_ids = tokenizer(docs, add_special_tokens=False)["input_ids"][: settings.eval_tokens]
        eval_sets["elixir_docs"] = blocks(eval_ids, settings.seq_len)

    data = blocks(train_ids, settings.seq_len)
    data = data[torch.randperm(len(data), generator=torch.Generator().manual_seed(settings.seed))]
    steps = max(1, settings.tokens // (settings.seq_len * settings.batch_size))
    if len(data) < settings.batch_size:
        raise PretrainError(f"only {len(data)} blocks of {settings.seq_len} tokens: lower --seq-len or add data")

    model = tiny.build_model(tokenizer, settings.seed, 2048, tie_word_embeddings=True)
    model.train()
    card.loss_before = {
        name: round(mean_loss(model, blocks_, settings.batch_size), 4) for name, blocks_ in eval_sets.items()
    }
    print(f"held-out loss before: {card.loss_before}", file=sys.stderr)

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": settings.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=settings.learning_rate,
        betas=(0.9, 0.95),
    )
    train_started = time.monotonic()
    loss_value = float("nan")
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, steps, settings)
        index = (step * settings.batch_size) % (len(data) - settings.batch_size + 1)
        batch = data[index : index + settings.batch_size]
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss_value = float(loss.detach())
        if (step + 1) % log_every == 0 or step + 1 == steps:
            elapsed = time.monotonic() - train_started
            rate = (step + 1) * settings.batch_size * settings.seq_len / elapsed
            eta = (steps - step - 1) * elapsed / (step + 1)
            print(f"step {step + 1}/{steps}  loss {loss_value:.3f}  {rate:,.0f} tok/s  eta {eta:.0f}s", file=sys.stderr)

    card.steps = steps
    card.tokens_trained = steps * settings.batch_size * settings.seq_len
    card.final_train_loss = round(loss_value, 4)
    card.loss_after = {
        name: round(mean_loss(model, blocks_, settings.batch_size), 4) for name, blocks_ in eval_sets.items()
    }
    card.tokens_per_second = round(card.tokens_trained / (time.monotonic() - train_started), 1)
    card.seconds = round(time.monotonic() - started, 1)
    print(f"held-out loss after: {card.loss_after}", file=sys.stderr)
    save(out, model.to(torch.bfloat16), tokenizer, card)
    return card


def save(out: Path, model: Any, tokenizer: Any, card: Card) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    tmp.chmod(0o755)
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "pretrain.json").write_text(json.dumps(asdict(card), indent=2) + "\n")
        (tmp / "README.md").write_text(model_card(card))
        load_make_tiny_model().publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def model_card(card: Card) -> str:
    rows = "\n".join(
        f"| {name} | {card.loss_before[name]:.2f} | {card.loss_after.get(name, float('nan')):.2f} |"
        for name in card.loss_before
    )
    settings = card.settings
    return f"""# tiny-code: a tiny base model that knows code, but not Elixir

Built by `scripts/pretrain_tiny_model.py` (`{card.command}`), seed {settings["seed"]}.
The architecture and tokenizer are `scripts/make_tiny_model.py`'s (4-layer Qwen2,
hidden 128, byte-level BPE with 8,192 tokens), with tied embeddings, stored in bfloat16.

## Data
Erlang from OTP's sources ({card.files.get("erlang", 0)} training files) and the Python
standard library ({card.files.get("python", 0)} training files), never Elixir. One file in
{HELD_OUT_EVERY} (by a hash of its path) is held out.

## Training
{card.tokens_trained:,} tokens in {card.steps} steps of {settings["batch_size"]} x {settings["seq_len"]},
AdamW at {settings["learning_rate"]} (warmup {settings["warmup_ratio"]}, cosine to a tenth),
{card.tokens_per_second:,.0f} tokens/s on {card.machine}; {card.seconds:.0f} s in all.
Final training loss {card.final_train_loss:.2f}.

## Held-out loss (nats per token)
| set | before | after |
| --- | --- | --- |
{rows}

`elixir_docs` is the Elixir documentation: never trained on, it shows what the
curriculum has to teach.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output directory (default {DEFAULT_OUT})")
    parser.add_argument("--force", action="store_true", help="rebuild even if a model exists")
    defaults = Settings()
    parser.add_argument("--tokens", type=int, default=defaults.tokens, help="training token budget")
    parser.add_argument("--seq-len", type=int, default=defaults.seq_len)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--eval-tokens", type=int, default=defaults.eval_tokens, help="tokens per held-out set")
    parser.add_argument("--tokenizer", type=Path, help="reuse this model directory's tokenizer instead of training it")
    parser.add_argument("--no-elixir-eval", action="store_true", help="skip the held-out loss on the Elixir docs")
    args = parser.parse_args(argv)
    for name in ("tokens", "seq_len", "batch_size", "eval_tokens"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer")
    if not args.learning_rate > 0:
        parser.error("--learning-rate must be positive")
    settings = Settings(
        tokens=args.tokens,
        seq_len=args.seq_len,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
        eval_tokens=args.eval_tokens,
    )
    try:
        card = pretrain(
            args.out, settings, force=args.force, tokenizer_dir=args.tokenizer, elixir_eval=not args.no_elixir_eval
        )
    except PretrainError as exc:
        print(f"pretrain_tiny_model: {exc}", file=sys.stderr)
        return 1
    if card is None:
        print(f"{args.out} is complete; keeping it (use --force to rebuild)", file=sys.stderr)
    else:
        print(json.dumps({"out": str(args.out), "loss_before": card.loss_before, "loss_after": card.loss_after}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
