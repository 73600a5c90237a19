"""Row encoding: which tokens carry loss, and how long rows are handled."""

from __future__ import annotations

import json

import pytest

from python_worker import fim
from python_worker.tests.test_training_fixtures import chat_row, fim_row
from python_worker.training.data import IGNORE, DataStats, RowEncoder, encode_files, row_kind
from python_worker.training.model import load_tokenizer


@pytest.fixture(scope="module")
def tok(tiny_model):
    return load_tokenizer(str(tiny_model))


def supervised_text(tok, seq) -> str:
    return tok.decode([t for t, lab in zip(seq.input_ids, seq.labels) if lab != IGNORE])


def test_row_kinds():
    assert row_kind(chat_row(0)) == "chat"
    assert row_kind(fim_row(0)) == "fim"
    assert row_kind({"text": "x"}) == "text"
    assert row_kind({"prompt": "a", "completion": "b"}) == "prompt_completion"
    assert row_kind({"code": "x"}) is None


def test_chat_loss_only_on_the_assistant_turn(tok):
    stats = DataStats()
    [seq] = RowEncoder(tok, 512).encode(chat_row(0), stats)
    target = supervised_text(tok, seq)
    assert target.startswith("def double(x), do: x * 2")
    assert "<|im_end|>" in target  # the model learns to end its turn
    assert "doubles x" not in target and "Elixir expert" not in target
    assert stats.kinds["chat"] == 1


def test_fim_loss_only_on_the_middle(tok):
    [seq] = RowEncoder(tok, 512).encode(fim_row(0), DataStats())
    assert supervised_text(tok, seq) == "a + b" + tok.eos_token
    assert seq.input_ids[-1] == tok.eos_token_id


@pytest.mark.parametrize("mode", ["psm", "spm"])
def test_long_fim_rows_keep_the_code_around_the_hole(tok, mode):
    """A FIM row from a long file is cut around its middle, as evaluation cuts
    it, not from the left, which would drop the prefix (PSM) or the start of the
    suffix (SPM): the code the middle is predicted from."""
    prefix = "".join(f"  def f{i}(x), do: x + {i}\n" for i in range(200)) + "  def target(x) do\n"
    middle = "    x * 2\n"
    suffix = "  end\n" + "".join(f"  def g{i}(x), do: x * {i}\n" for i in range(200))
    style = fim.style("qwen")
    prompt = style.spm(prefix, suffix) if mode == "spm" else style.psm(prefix, suffix)
    row = {
        "text": prompt + middle,
        "prefix": prefix,
        "middle": middle,
        "suffix": suffix,
        "fim_style": "qwen",
        "fim_mode": mode,
    }
    stats = DataStats()
    [seq] = RowEncoder(tok, 256).encode(row, stats)
    assert len(seq.input_ids) <= 256
    assert supervised_text(tok, seq) == middle + tok.eos_token
    text = tok.decode(seq.input_ids)
    assert text.startswith("<|fim_prefix|>")  # the format survives whole
    suffix_part = text.split("<|fim_suffix|>")[1].split("<|fim_middle|>")[0]
    assert suffix_part.startswith("  end\n") and len(suffix_part) >= 100
    # The prefix's end is right before the middle: after <|fim_prefix|> in PSM,
    # after <|fim_middle|> in SPM.
    prefix_part = text.split("<|fim_suffix|>")[0] if mode == "psm" else text.split("<|fim_middle|>")[1]
    assert prefix_part.replace(middle + tok.eos_token, "").endswith("  def target(x) do\n")
    assert stats.cut_rows == 0 and stats.fim_fitted_rows == 1


def test_text_rows_are_split_into_windows(tok):
    stats = DataStats()
    text = "defmodule A do\n  def f(x), do: x\nend\n" * 40
    seqs = RowEncoder(tok, 64).encode({"text": text}, stats)
    assert len(seqs) > 1 and all(len(s.input_ids) <= 64 for s in seqs)
    assert all(s.labels == s.input_ids for s in seqs)
    total = sum(len(s.input_ids) for s in seqs)
    whole = len(tok(text + tok.eos_token, add_special_tokens=False)["input_ids"])
    assert whole - 1 <= total <= whole  # a lone last token predicts nothing and is dropped
    assert stats.split_rows == 1


def test_long_supervised_rows_keep_their_target(tok):
    row = chat_row(0)
    row["messages"][1]["content"] = "please " * 300
    stats = DataStats()
    [seq] = RowEncoder(tok, 64).encode(row, stats)
    assert len(seq.input_ids) == 64
    assert supervised_text(tok, seq).startswith("def double(x), do: x * 2")
    assert stats.cut_rows == 1


def test_unknown_rows_are_counted_not_fatal(tok):
    stats = DataStats()
    assert RowEncoder(tok, 64).encode({"code": "x"}, stats) == []
    assert stats.skipped["unknown_format"] == 1


def test_eval_files_are_capped_by_tokens_in_whole_rows(tok, tmp_path):
    rows = [{"text": f"defmodule M{i} do\n  def f(x), do: x + {i}\nend\n" * 3} for i in range(50)]
    path = tmp_path / "eval.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    encoder = RowEncoder(tok, 512)
    _, whole = encode_files([path], encoder)
    per_row = whole.tokens / whole.rows
    cols, capped = encode_files([path], encoder, max_tokens=int(per_row * 10))
    assert 10 <= capped.rows <= 12 < whole.rows
    assert capped.tokens >= per_row * 10 - per_row  # the cap is reached, not undershot
    assert [len(ids) for ids in cols["input_ids"]] == [
        len(ids) for ids in encode_files([path], encoder, capped.rows)[0]["input_ids"]
    ]


def test_encode_files_keeps_only_the_rows_asked_for(tmp_path):
    from python_worker.training.data import is_replay

    path = tmp_path / "eval.jsonl"
    rows = [{"text": "defmodule A do end", "source": "hex"}, {"text": "import os", "source": "replay"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows * 3))

    class Counting:
        def encode(self, row, stats):
            stats.rows += 1
            return []

    _, elixir = encode_files([path], Counting(), keep=lambda row: not is_replay(row))
    _, replay = encode_files([path], Counting(), limit=2, keep=is_replay)
    assert (elixir.rows, replay.rows) == (3, 2)
