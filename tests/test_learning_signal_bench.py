"""bench/learning_signal.py end to end on a few files with a tiny budget: the
real Mix path (scrape, build, curriculum with and without the guard, evaluate)
runs, and the result and REPORT.md carry every metric for every stage.

The random tiny model stands in for the pretrained base here: this checks the
bench's plumbing, not what it measures (that is the committed result)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from tests.corpus import write_corpus
from tests.host_process import ROOT, TINY_MODEL

MODELS = ["base", "stage1", "stage2", "stage3", "stage1_no_guard"]
METRICS = ["elixir_loss", "python_loss", "fim_exact_match", "fim_edit_similarity", "compile_rate", "pass_at_1"]


def test_every_metric_for_every_stage_and_the_ablation(tmp_path: Path) -> None:
    write_corpus(tmp_path / "corpus")
    packages = sorted(p for p in (tmp_path / "corpus").iterdir() if p.is_dir())
    report = tmp_path / "report"
    result = subprocess.run(
        [
            sys.executable, str(ROOT / "bench" / "learning_signal.py"),
            *[arg for package in packages for arg in ("--corpus", str(package))],
            "--base", str(TINY_MODEL), "--steps", "2", "--problems", "1", "--max-tokens", "16",
            "--fim-limit", "2", "--python-chars", "5000", "--no-save",
            "--report-dir", str(report), "--work", str(tmp_path / "work"),
        ],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads(result.stdout.strip().splitlines()[-1])
    for key in ("elixir_loss_drop_pct", "python_loss_rise_pct", "python_loss_rise_pct_no_guard"):
        assert math.isfinite(record[key]), key
    assert set(record["fim_exact_match"]) == set(MODELS) == set(record["compile_rate"])
    for model in MODELS:
        for metric in METRICS:
            value = record["by_model"][model][metric]
            assert isinstance(value, float | int) and math.isfinite(value), (model, metric, value)
    # The stages trained: each one's Elixir loss differs from the base's.
    assert all(record["by_model"][m]["elixir_loss"] != record["by_model"]["base"]["elixir_loss"] for m in MODELS[1:])
    text = (report / "REPORT.md").read_text()
    for model in MODELS:
        assert f"| {model} |" in text
    assert (report / "chart.svg").read_text().count("<polyline") == len(METRICS)
