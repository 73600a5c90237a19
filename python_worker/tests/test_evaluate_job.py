"""The Evaluate job with execution: given completions (no model), generated ones
(the tiny model), FIM scoring, outputs and validation, through evaluate_events."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from python_worker.evaluation import problems
from python_worker.proto import worker_pb2
from python_worker.training.errors import InvalidRequest
from python_worker.training.rpc import evaluate_events

K = worker_pb2.JobEvent
REFERENCE = problems.REPO / "evals" / "reference" / "humaneval-elixir.jsonl"


def events(req: worker_pb2.EvaluateRequest) -> list[worker_pb2.JobEvent]:
    return list(evaluate_events(req, threading.Event()))


def test_reference_completions_score_1_without_a_model(tmp_path: Path) -> None:
    out = tmp_path / "out"
    stage_metrics = tmp_path / "metrics.json"
    stage_metrics.write_text('{"eval_loss": 1.5}')
    got = events(
        worker_pb2.EvaluateRequest(
            job_id="ref", benchmarks=["humaneval-elixir"], completions_path=str(REFERENCE),
            max_problems=3, output_dir=str(out), max_workers=2, metrics_path=str(stage_metrics),
        )
    )  # fmt: skip
    done = got[-1]
    assert done.kind == K.COMPLETED, done.message
    assert done.metrics["pass_at_1"] == 1.0
    assert done.metrics["compile_rate"] == 1.0
    assert done.metrics["problems"] == 3 and done.metrics["samples"] == 3
    assert done.metrics["excluded"] == 1  # HumanEval_153_Strongest_Extension
    assert "pass_at_10" not in done.metrics
    progress = [e for e in got if e.kind == K.PROGRESS and e.phase == "execute"]
    assert [e.step for e in progress] == [1, 2, 3]
    summary = json.loads((out / "summary.json").read_text())
    assert done.artifact_path == str(out / "summary.json")
    assert summary["pass_at_1"] == 1.0 and summary["statuses"]["passed"] == 3
    assert summary["excluded_problems"] == ["HumanEval_153_Strongest_Extension"]
    assert summary["sandbox"]["applied"] and "unavailable" in summary["sandbox"]
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["status"] for r in rows] == ["passed"] * 3
    assert {"problem", "sample", "completion", "exit_code", "duration_s", "stdout_tail", "stderr_tail"} <= set(rows[0])
    assert not list(out.glob(".*"))  # no temporary files left
    # A stage's metrics.json keeps what it had and gains the evaluation.
    merged = json.loads(stage_metrics.read_text())
    assert merged["eval_loss"] == 1.5
    assert merged["evaluation"]["pass_at_1"] == 1.0
    assert merged["evaluation"]["summary"] == str(out / "summary.json")


def test_several_samples_give_pass_at_10(tmp_path: Path) -> None:
    rows = [json.loads(line) for line in REFERENCE.read_text().splitlines()][:1]
    name, good = rows[0]["name"], rows[0]["completion"]
    completions = tmp_path / "c.jsonl"
    # 10 samples, 3 correct: pass@1 = 0.3, pass@10 = 1.
    lines = [{"task_id": name, "completion": good if i < 3 else "nil\n  end\nend\n"} for i in range(10)]
    completions.write_text("".join(json.dumps(r) + "\n" for r in lines))
    done = events(
        worker_pb2.EvaluateRequest(
            benchmarks=["humaneval-elixir"], completions_path=str(completions), max_problems=1, max_workers=2
        )
    )[-1]
    assert done.kind == K.COMPLETED, done.message
    assert done.metrics["pass_at_1"] == pytest.approx(0.3)
    assert done.metrics["pass_at_10"] == pytest.approx(1.0)


def test_tiny_model_generates_and_scores_with_fim(tiny_model: Path, tmp_path: Path) -> None:
    fim_rows = tmp_path / "fim.jsonl"
    fim_rows.write_text(
        "".join(
            json.dumps({"prefix": f"defmodule A{i} do\n  def f, do: ", "middle": f"{i}", "suffix": "\nend\n"}) + "\n"
            for i in range(3)
        )
    )
    out = tmp_path / "out"
    got = events(
        worker_pb2.EvaluateRequest(
            job_id="gen", model=str(tiny_model), benchmarks=["humaneval-elixir"], max_problems=2,
            params=worker_pb2.SamplingParams(max_tokens=24), fim_datasets=[str(fim_rows)],
            output_dir=str(out), max_workers=2,
        )
    )  # fmt: skip
    done = got[-1]
    assert done.kind == K.COMPLETED, done.message
    assert done.metrics["pass_at_1"] == 0.0  # a random tiny model solves nothing
    assert 0.0 <= done.metrics["fim_edit_similarity"] <= 1.0
    assert done.metrics["fim_exact_match"] == 0.0
    assert [e.step for e in got if e.phase == "generate"] == [1, 2]
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(r["status"] != "passed" for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    assert [r["examples"] for r in summary["fim"].values()] == [3]
    assert summary["sampling"]["temperature"] == 0.0


def test_invalid_requests_name_the_field(tiny_model: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"name": "x"}\n')
    cases = [
        (worker_pb2.EvaluateRequest(benchmarks=["humaneval-elixir", "mbpp-elixir"]), "one problem set per job"),
        (worker_pb2.EvaluateRequest(benchmarks=["nope"]), "problems: 'nope' is neither a shipped set"),
        (worker_pb2.EvaluateRequest(benchmarks=["humaneval-elixir"]), "model is required"),
        (worker_pb2.EvaluateRequest(completions_path=str(REFERENCE)), "completions_path: give the problem set"),
        (worker_pb2.EvaluateRequest(benchmarks=["humaneval-elixir"], completions_path="/no.jsonl"),
         "completions_path: /no.jsonl does not exist"),
        (worker_pb2.EvaluateRequest(model=str(tiny_model), benchmarks=["humaneval-elixir"], samples_per_problem=10),
         "temperature is 0"),
        (worker_pb2.EvaluateRequest(benchmarks=["humaneval-elixir"], completions_path=str(REFERENCE), timeout_s=-1),
         "timeout_s must be >= 0"),
    ]  # fmt: skip
    for req, message in cases:
        with pytest.raises(InvalidRequest) as err:
            evaluate_events(req, threading.Event())
        assert message in str(err.value)
    # A malformed problem file fails the job with the line at fault.
    done = events(worker_pb2.EvaluateRequest(benchmarks=[str(bad)], completions_path=str(REFERENCE)))[-1]
    assert done.kind == K.FAILED and f"{bad}:1: not a MultiPL-E row" in done.message
    # Completions that miss a problem fail rather than score 0 quietly.
    done = events(
        worker_pb2.EvaluateRequest(benchmarks=["humaneval-elixir"], completions_path=str(REFERENCE), max_problems=7)
    )[-1]
    assert done.kind == K.FAILED and "no completion for 1 problem(s)" in done.message


def test_a_fim_row_longer_than_the_context_is_cut_around_the_hole(tiny_model: Path, tmp_path: Path) -> None:
    """A long file's FIM row keeps the code nearest the hole and fits the context,
    instead of failing the whole evaluation."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from python_worker import fim
    from python_worker.evaluation import fim_eval
    from python_worker.fim import fit_to_context

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    prefix = "".join(f"  def f{i}(x), do: x + {i}\n" for i in range(800)) + "  def target(x) do\n"
    suffix = "  end\n" + "".join(f"  def g{i}(x), do: x * {i}\n" for i in range(800))
    short_prefix, short_suffix = fit_to_context(tokenizer, prefix, suffix, 1000)
    used = len(tokenizer(short_prefix)["input_ids"]) + len(tokenizer(short_suffix)["input_ids"])
    assert used <= 1000 + 2  # re-tokenizing a cut may merge differently at the edge
    assert short_prefix.endswith("  def target(x) do\n") and short_suffix.startswith("  end\n")
    assert len(short_suffix) >= 100
    assert fit_to_context(tokenizer, "a", "b", 1000) == ("a", "b")
    # The scorer cuts such a row itself: the model's context is 2048 tokens, the row ~20,000.
    rows = tmp_path / "long.jsonl"
    rows.write_text(json.dumps({"prefix": prefix, "middle": "    x * 2\n", "suffix": suffix}) + "\n")
    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    got = fim_eval.score(model, tokenizer, fim.style("qwen"), str(rows), 1, 2048, threading.Event())
    assert got.examples == 1 and 0.0 <= got.edit_similarity <= 1.0
