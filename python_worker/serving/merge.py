"""Merge a LoRA adapter into its base model and write a full Hugging Face checkpoint.

    .venv/bin/python -m python_worker.serving.merge ADAPTER_DIR --out OUT_DIR [--base MODEL] [--force]

The base model is the adapter's `base_model_name_or_path` unless --base names
another copy of it. The output (safetensors weights, config, tokenizer) loads
with any tool that reads Hugging Face checkpoints (vLLM, TGI, llama.cpp's
converter). It is written to a temporary directory beside OUT_DIR and renamed,
so OUT_DIR is either complete or absent. `mix adapters.merge` runs this.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path


class MergeError(Exception):
    """The adapter, base model or output directory cannot be used; the message says which."""


def merge(adapter: Path, out: Path, base: str | None = None, *, force: bool = False) -> Path:
    config_path = adapter / "adapter_config.json"
    if not config_path.is_file():
        raise MergeError(f"{adapter} is not an adapter directory: {config_path} does not exist")
    if out.exists() and not force:
        raise MergeError(f"{out} already exists; pass --force to replace it")
    base = base or json.loads(config_path.read_text()).get("base_model_name_or_path") or ""
    if not base:
        raise MergeError(f"{config_path} names no base model; pass --base MODEL")

    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        model = AutoModelForCausalLM.from_pretrained(base)
        tokenizer = AutoTokenizer.from_pretrained(base)
    except (OSError, ValueError) as exc:
        raise MergeError(f"could not load base model {base}: {exc}") from exc
    try:
        merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    except Exception as exc:
        raise MergeError(f"could not apply adapter {adapter} to {base}: {exc}") from exc

    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        merged.save_pretrained(str(temporary), safe_serialization=True)
        tokenizer.save_pretrained(str(temporary))
        if out.exists():
            shutil.rmtree(out)
        temporary.rename(out)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m python_worker.serving.merge", description=__doc__.splitlines()[0])
    parser.add_argument("adapter", type=Path, help="the adapter directory (adapter_config.json + weights)")
    parser.add_argument("--out", type=Path, required=True, help="the merged model directory to write")
    parser.add_argument("--base", help="the base model (default: the adapter's base_model_name_or_path)")
    parser.add_argument("--force", action="store_true", help="replace OUT if it exists")
    args = parser.parse_args(argv)
    try:
        out = merge(args.adapter, args.out, args.base, force=args.force)
    except MergeError as exc:
        print(f"merge: {exc}", file=sys.stderr)
        return 1
    print(f"merged {args.adapter} into {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
