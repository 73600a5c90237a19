"""The builder on real Elixir source: the split's eval share and decontamination.

Needs the real corpus (Elixir's six apps, jason, plug, ecto, phoenix, telemetry;
see its README). It is input data, not part of the project, so its path comes
from the environment and the test is skipped when it is absent:

    ELIXIR_CORPUS_DIR=../shared/corpus .venv/bin/python -m pytest \\
        python_worker/tests/test_dataset_real_corpus.py -q

Only stage 1 is built (no FIM, pairs, books or replay): the split and the
decontamination are decided by then, and it keeps the test to a few seconds.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from python_worker.dataset import BuildRequest, parse_config
from python_worker.dataset.build import build
from python_worker.tests.test_dataset_corpus import HUMANEVAL

CORPUS = Path(os.environ.get("ELIXIR_CORPUS_DIR", "/nonexistent-elixir-corpus"))
ELIXIR_APPS = ("eex", "elixir", "ex_unit", "iex", "logger", "mix")
PACKAGES = ("jason", "plug", "ecto", "phoenix", "telemetry")
EVAL_FRACTION = 0.05

pytestmark = pytest.mark.skipif(
    not (CORPUS / "elixir" / "lib" / "elixir").is_dir(),
    reason="the real Elixir corpus is input data outside the project: set ELIXIR_CORPUS_DIR to use it",
)

# Core stdlib files whose doc examples and tests are full of literal runs such as
# [1, 2, 3, 4, 5, 6] and %{"a" => 1}: they were once dropped as contaminated.
CORE = [
    ("elixir", "lib/enum.ex"),
    ("elixir", "lib/string.ex"),
    ("elixir", "lib/map.ex"),
    ("elixir", "lib/regex.ex"),
    ("elixir", "lib/kernel/special_forms.ex"),
    ("elixir", "test/elixir/enum_test.exs"),
]


def _copied_prompt_module() -> str:
    """A module whose @doc is HumanEval_0's statement, re-wrapped, with a solution."""
    prompt = json.loads(HUMANEVAL.read_text().splitlines()[0])["prompt"]
    statement = " ".join(line.lstrip("# ") for line in prompt.split("\n")[:2])
    return (
        "defmodule Closeness do\n"
        f'  @doc """\n  {statement}\n  """\n'
        "  def has_close_elements(numbers, threshold) do\n"
        "    for {a, i} <- Enum.with_index(numbers), {b, j} <- Enum.with_index(numbers), i != j,\n"
        "        reduce: false do\n"
        "      acc -> acc or abs(a - b) < threshold\n"
        "    end\n"
        "  end\n"
        "end\n"
    )


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The scraper layout (manifest.jsonl + one directory per package) over the
    corpus, by symlinks, plus one package that pastes a HumanEval prompt."""
    root = tmp_path_factory.mktemp("real")
    raw = root / "raw"
    raw.mkdir()
    rows = []
    dirs = {app: CORPUS / "elixir" / "lib" / app for app in ELIXIR_APPS}
    dirs |= {name: CORPUS / name for name in PACKAGES}
    for name, src in dirs.items():
        assert src.is_dir(), f"{src} is missing from ELIXIR_CORPUS_DIR={CORPUS}"
        (raw / name).symlink_to(src.resolve(), target_is_directory=True)
        rows.append({"name": name, "version": "", "path": name, "licenses": ["Apache-2.0"]})
    copied = raw / "copied" / "lib"
    copied.mkdir(parents=True)
    (copied / "closeness.ex").write_text(_copied_prompt_module())
    rows.append({"name": "copied", "version": "", "path": "copied", "licenses": ["MIT"]})
    (raw / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = parse_config(
        json.dumps(
            {
                "split": {"eval_fraction": EVAL_FRACTION},
                "stage2": {"enabled": False},
                "stage3": {"enabled": False},
                "replay": {"share": 0},
            }
        )
    )
    out = root / "out"
    result = build(
        BuildRequest(inputs=[str(raw)], out_dir=str(out), config=config, seed=1), lambda _e: None, threading.Event()
    )
    return result.manifest | {"_out": str(out)}


def test_core_stdlib_is_kept_and_a_pasted_prompt_is_dropped(manifest: dict) -> None:
    dropped = {(c["source"], c["path"]): c for c in manifest["contaminated_files"]}
    assert not [key for key in CORE if key in dropped], [dropped[k] for k in CORE if k in dropped]
    out = Path(manifest["_out"])
    rows = [
        json.loads(line)
        for sp in ("train", "eval")
        for line in (out / "stage1" / f"{sp}.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    present = {(r["source"], r["path"]) for r in rows}
    assert not [key for key in CORE if key not in present]
    hit = dropped[("copied", "lib/closeness.ex")]
    assert (hit["problem"], hit["kind"]) == ("multipl-e-humaneval-elixir/HumanEval_0_has_close_elements", "text")


def test_eval_share_of_tokens_is_near_the_fraction(manifest: dict) -> None:
    s1 = manifest["split"]["stages"]["stage1"]
    assert s1["mode"] == "package"
    assert abs(s1["eval_token_share"] - EVAL_FRACTION) <= 0.03, s1
    # The largest app is far more than the target: it never goes whole into eval.
    assert "elixir" not in manifest["sources"]["eval_keys"]
