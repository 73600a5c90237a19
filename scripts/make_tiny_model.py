"""Build the tiny default model: a small Qwen2 causal LM with an Elixir/Erlang BPE tokenizer.

    .venv/bin/python scripts/make_tiny_model.py                 # -> data/models/tiny-elixir
    .venv/bin/python scripts/make_tiny_model.py --out OUT_DIR --force  # rebuild elsewhere

There is no model hub here, so the worker's default model is made locally. The
weights are random (fixed seed, so every build is identical); the point is a
real checkpoint that loads with `from_pretrained` exactly like a downloaded one,
with a real tokenizer: byte-level BPE trained on local Elixir/Erlang text, the
Qwen special tokens (ChatML and FIM) and a ChatML chat template.

Corpus (all offline):
  * the Elixir documentation of :elixir, :eex, :ex_unit, :logger and :mix, dumped
    with `Code.fetch_docs/1` (prose plus `iex>` examples), and
  * the OTP Erlang sources from Debian's erlang-src (/usr/lib/erlang/lib/*/src/*.erl).
`--corpus PATH` (repeatable; files or directories) replaces both, e.g. for tests.

The build is idempotent: an existing complete model is kept unless --force. It
is written to a temporary sibling directory and renamed into place, so readers
never see a half-written model.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "data" / "models" / "tiny-elixir"

EOS = "<|endoftext|>"
SPECIAL_TOKENS = [
    EOS,
    "<|im_start|>",
    "<|im_end|>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|file_sep|>",
    "<|repo_name|>",
]

# ChatML, as Qwen models use it; the generation prompt opens the assistant turn.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

# The pre-tokenizer split of Qwen2 tokenizers.
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

ERLANG_SOURCES = "/usr/lib/erlang/lib/*/src/*.erl"
ELIXIR_APPS = [":elixir", ":eex", ":ex_unit", ":logger", ":mix"]

# Prints every module and function doc of the given apps, in English, to stdout.
ELIXIR_DOC_DUMP = """
for app <- [%(apps)s] do
  Application.load(app)
  {:ok, mods} = :application.get_key(app, :modules)
  for mod <- Enum.sort(mods) do
    case Code.fetch_docs(mod) do
      {:docs_v1, _, _, _, moddoc, _, docs} ->
        if is_map(moddoc) and Map.has_key?(moddoc, "en") do
          IO.puts("# " <> inspect(mod) <> "\\n\\n" <> moddoc["en"])
        end
        for {{kind, name, arity}, _, sigs, doc, _} <- docs, is_map(doc), Map.has_key?(doc, "en") do
          IO.puts("## #{kind} #{Enum.join(sigs, " ")} (#{name}/#{arity})\\n\\n" <> doc["en"])
        end
      _ -> :ok
    end
  end
end
"""


class BuildError(Exception):
    """A build precondition failed; the message says what to do."""


def is_complete(path: Path) -> bool:
    """A model directory that from_pretrained can load (the final rename makes this atomic)."""
    return (
        (path / "config.json").is_file()
        and (path / "tokenizer.json").is_file()
        and (path / "tokenizer_config.json").is_file()
        and any(path.glob("*.safetensors"))
    )


def elixir_docs() -> str:
    """The Elixir docs of the installed Elixir, or "" when elixir isn't installed."""
    if shutil.which("elixir") is None:
        return ""
    script = ELIXIR_DOC_DUMP % {"apps": ", ".join(ELIXIR_APPS)}
    result = subprocess.run(["elixir", "-e", script], capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0:
        print(f"warning: dumping Elixir docs failed: {result.stderr[-500:]}", file=sys.stderr)
        return ""
    return result.stdout


def _files_under(paths: list[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file())
        elif path.is_file():
            yield path
        else:
            raise BuildError(f"corpus path {path} does not exist")


def _read(path: Path) -> str:
    return path.read_bytes().decode("utf-8", errors="replace")


def collect_corpus(corpus: list[Path] | None, max_bytes: int) -> list[str]:
    """Texts to train the tokenizer on, at most max_bytes in all (sorted, so builds repeat)."""
    texts: list[str] = []
    if corpus:
        texts = [_read(p) for p in _files_under(corpus)]
    else:
        docs = elixir_docs()
        if docs:
            texts.append(docs)
        texts.extend(_read(Path(p)) for p in sorted(glob.glob(ERLANG_SOURCES)))
    kept: list[str] = []
    total = 0
    for text in texts:
        if total >= max_bytes:
            break
        text = text[: max_bytes - total]
        kept.append(text)
        total += len(text)
    if total == 0:
        raise BuildError(
            f"no corpus found: install Elixir and Debian's erlang-src ({ERLANG_SOURCES}), or pass --corpus FILE_OR_DIR"
        )
    return kept


def train_tokenizer(texts: list[str], vocab_size: int):  # -> PreTrainedTokenizerFast
    from tokenizers import (
        Regex,
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    # Byte-level BPE, so every string round-trips with no unknown token. The split
    # is Qwen2's (digits one by one): transformers rebuilds a qwen2 model's tokenizer
    # with that split on load, so training with any other would not round-trip.
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=EOS,
        pad_token=EOS,
        extra_special_tokens=SPECIAL_TOKENS[1:],
        chat_template=CHAT_TEMPLATE,
        model_max_length=2048,
        clean_up_tokenization_spaces=False,
    )


def build_model(tokenizer, seed: int, context_length: int, tie_word_embeddings: bool = False):  # -> Qwen2ForCausalLM
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    eos_id = tokenizer.convert_tokens_to_ids(EOS)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=352,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=context_length,
        tie_word_embeddings=tie_word_embeddings,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    # Stop on both end-of-text and end-of-turn, like Qwen chat checkpoints do.
    model.generation_config = GenerationConfig(
        bos_token_id=eos_id,
        eos_token_id=[eos_id, tokenizer.convert_tokens_to_ids("<|im_end|>")],
        pad_token_id=eos_id,
    )
    return model


def publish(tmp: Path, out: Path) -> None:
    """Rename the finished directory `tmp` to `out`, replacing an older `out`."""
    if out.exists():
        # Move the old one aside first: rename can't replace a non-empty directory.
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.rename(out, old / out.name)
        os.rename(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, out)


def build(
    out: Path,
    *,
    force: bool = False,
    corpus: list[Path] | None = None,
    max_corpus_bytes: int = 4_000_000,
    vocab_size: int = 8192,
    seed: int = 0,
    context_length: int = 2048,
) -> bool:
    """Build the model into `out`; returns False when a complete one was already there."""
    out = out.resolve()
    if is_complete(out) and not force:
        return False
    started = time.monotonic()
    texts = collect_corpus(corpus, max_corpus_bytes)
    tokenizer = train_tokenizer(texts, vocab_size)
    model = build_model(tokenizer, seed, context_length)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; a model directory is ordinary data
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    size = sum(len(t) for t in texts)
    params = sum(p.numel() for p in model.parameters())
    print(
        f"built {out}: {params:,} parameters, vocab {len(tokenizer)}, "
        f"corpus {size:,} chars, {time.monotonic() - started:.1f}s",
        file=sys.stderr,
    )
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("out", nargs="?", type=Path, help=f"output directory (default {DEFAULT_OUT})")
    parser.add_argument("--out", dest="out_flag", type=Path, help="output directory (same as OUT)")
    parser.add_argument("--force", action="store_true", help="rebuild even if a model exists")
    parser.add_argument(
        "--corpus",
        type=Path,
        action="append",
        help="train the tokenizer on these files/directories instead of the Elixir/OTP text",
    )
    parser.add_argument("--max-corpus-bytes", type=int, default=4_000_000)
    parser.add_argument("--vocab-size", type=int, default=8192)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--context-length", type=int, default=2048)
    args = parser.parse_args(argv)
    if args.out and args.out_flag and args.out != args.out_flag:
        parser.error("give the output directory once (OUT or --out)")
    out = args.out or args.out_flag or DEFAULT_OUT
    try:
        built = build(
            out,
            force=args.force,
            corpus=args.corpus,
            max_corpus_bytes=args.max_corpus_bytes,
            vocab_size=args.vocab_size,
            seed=args.seed,
            context_length=args.context_length,
        )
    except BuildError as exc:
        print(f"make_tiny_model: {exc}", file=sys.stderr)
        return 1
    if not built:
        print(f"{out} is complete; keeping it (use --force to rebuild)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
