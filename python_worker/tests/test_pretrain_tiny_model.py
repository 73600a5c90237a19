"""scripts/pretrain_tiny_model.py with a tiny budget: it runs, its held-out loss
falls, it is deterministic for a seed, and it writes a complete model with a card."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from python_worker.tests.procs import REPO


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pretrain_tiny_model", REPO / "scripts" / "pretrain_tiny_model.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def two_runs(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, ModuleType]:
    script = load_script()
    settings = script.Settings(tokens=12_288, seq_len=64, batch_size=8, eval_tokens=2_048, seed=7)
    outs = []
    for name in ("first", "second"):
        out = tmp_path_factory.mktemp(name) / "model"
        card = script.pretrain(out, settings, tokenizer_dir=tiny_model, elixir_eval=False, log_every=1000)
        assert card is not None
        outs.append(out)
    return outs[0], outs[1], script


def test_a_tiny_budget_trains_and_the_held_out_loss_falls(two_runs: tuple[Path, Path, ModuleType]) -> None:
    first, _, script = two_runs
    assert script.load_make_tiny_model().is_complete(first)
    card = json.loads((first / "pretrain.json").read_text())
    assert card["steps"] == 12_288 // (64 * 8)
    assert set(card["loss_before"]) == {"erlang", "python"}  # never Elixir in the data
    for name, before in card["loss_before"].items():
        assert card["loss_after"][name] < before - 0.5, (name, card)
    readme = (first / "README.md").read_text()
    assert "never Elixir" in readme and f"{card['tokens_trained']:,} tokens" in readme
    config = json.loads((first / "config.json").read_text())
    assert config["tie_word_embeddings"] is True and config["dtype"] == "bfloat16"


def test_the_same_seed_gives_the_same_weights(two_runs: tuple[Path, Path, ModuleType]) -> None:
    first, second, _ = two_runs
    assert (first / "model.safetensors").read_bytes() == (second / "model.safetensors").read_bytes()


def test_held_out_files_are_never_trained_on() -> None:
    script = load_script()
    files = script.erlang_sources()
    held = [p for p in files if script.held_out(p)]
    assert 0 < len(held) < len(files) / 10
    # The split depends on the file, not on the order or the machine's path prefix.
    assert all(script.held_out(Path("/elsewhere") / p.parent.name / p.name) for p in held)


def test_the_shipped_base_knows_erlang_and_python_but_was_never_shown_elixir(tiny_model: Path) -> None:
    """models/tiny-code is the pretrained base: on a held-out Erlang file its loss
    is far below the random tiny model's, and its card says what it was trained on."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    shipped = REPO / "models" / "tiny-code"
    card = json.loads((shipped / "pretrain.json").read_text())
    assert set(card["files"]) == {"erlang", "python"}
    assert card["loss_after"]["erlang"] < card["loss_before"]["erlang"] - 3
    script = load_script()
    held = next(p for p in script.erlang_sources() if script.held_out(p))
    tokenizer = AutoTokenizer.from_pretrained(shipped)
    ids = torch.tensor([tokenizer(held.read_text(errors="replace"))["input_ids"][:512]])
    losses = {}
    for name, path in (("shipped", shipped), ("random", tiny_model)):
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        with torch.inference_mode():
            losses[name] = float(model(input_ids=ids, labels=ids).loss)
    assert losses["shipped"] < losses["random"] - 3, losses
