"""`mix evaluate` against the real host: the tiny model generates and scores 0
(it is random), and the reference solutions, given as --completions, score 1.0.

    .venv/bin/python -m pytest tests/test_evaluate_e2e.py -q
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.host_process import ROOT, HostProcess
from tests.test_jobs_e2e import host_jobs, mix

REFERENCE = ROOT / "evals" / "reference" / "humaneval-elixir.jsonl"


def summary_line(stdout: str) -> dict:
    """--json prints the summary as the task's last line."""
    return json.loads(stdout.strip().splitlines()[-1])


def test_mix_evaluate_scores_the_tiny_model_and_reference_solutions(host: HostProcess, tmp_path: Path) -> None:
    result = mix(host, "evaluate", "--problems", "humaneval-elixir", "--model", "tiny-elixir", "--limit", "5",
                 "--max-tokens", "48", "--json")  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "on the host at" in result.stdout, result.stdout
    summary = summary_line(result.stdout)
    assert summary["pass_at_1"] == 0.0  # a random tiny model solves nothing
    assert summary["problems"] == 5 and summary["samples"] == 5
    assert {"pass_at_1", "compile_rate", "problems", "samples"} <= set(summary)
    assert "pass_at_10" not in summary
    out = Path(summary["out"])
    assert out.parent == host.data_dir / "evaluations"
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 5 and all(r["status"] != "passed" for r in rows)

    # The reference solutions, shown as the readable table.
    out = tmp_path / "reference"
    result = mix(host, "evaluate", "--problems", "humaneval-elixir", "--completions", str(REFERENCE),
                 "--limit", "6", "--out", str(out))  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"pass_at_1 +1\.000", result.stdout), result.stdout
    assert re.search(r"compile_rate +1\.000", result.stdout), result.stdout
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["pass_at_1"] == 1.0 and on_disk["problems"] == 6 and on_disk["excluded"] == 1
    assert on_disk["sandbox"]["applied"]
    jobs = [job for job in host_jobs(host, "evaluate") if job["args"].get("out") == str(out)]
    assert [job["state"] for job in jobs] == ["succeeded"], jobs

    # A bad flag is named before any job exists.
    result = mix(host, "evaluate", "--problems", "no-such-set")
    assert result.returncode != 0
    assert '--problems: "no-such-set" is neither a shipped set' in result.stdout + result.stderr
