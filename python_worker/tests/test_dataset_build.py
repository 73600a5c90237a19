"""End to end: build the fixture corpus and check every planted case, the stages,
the split, the manifest, and that two builds (2 workers vs inline) are byte-identical."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from python_worker import fim
from python_worker.dataset import BuildRequest, InvalidRequest, parse_config
from python_worker.dataset.build import build
from python_worker.dataset.output import sha256_file
from python_worker.job_events import LOG, PROGRESS, Event
from python_worker.jobs import Cancelled
from python_worker.tests.test_dataset_corpus import (
    EVALS,
    HUMANEVAL,
    Corpus,
    _package,
    _write_manifest,
    elixir_module,
    write_corpus,
)

CODE = elixir_module("Partial", 1)

TEST_CONFIG = {"split": {"eval_fraction": 0.3}, "stage2": {"fim_rows_per_file": 3}}


@dataclass
class Built:
    corpus: Corpus
    out: Path
    manifest: dict[str, Any]
    rows: dict[tuple[int, str], list[dict[str, Any]]]
    events: list[Event]


def _request(corpus: Corpus, out: Path, workers: int, **config: Any) -> BuildRequest:
    cfg = parse_config(json.dumps({**TEST_CONFIG, **config, "workers": workers}))
    cfg.stage3.book_dirs = parse_config(json.dumps({"stage3": {"book_dirs": [str(corpus.book_dir)]}})).stage3.book_dirs
    return BuildRequest(
        inputs=[str(corpus.hex_dir), str(corpus.docs_dir)],
        out_dir=str(out),
        config=cfg,
        seed=3,
        eval_files=[str(corpus.extra_eval)],
    )


def _read(out: Path) -> dict[tuple[int, str], list[dict[str, Any]]]:
    return {
        (stage, split): [
            json.loads(line) for line in (out / f"stage{stage}" / f"{split}.jsonl").read_text().splitlines()
        ]
        for stage in (1, 2, 3)
        for split in ("train", "eval")
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    root = tmp_path_factory.mktemp("dataset")
    corpus = write_corpus(root)
    events: list[Event] = []
    result = build(_request(corpus, root / "out", workers=2), events.append, threading.Event())
    return Built(corpus, result.out_dir, result.manifest, _read(result.out_dir), events)


def _all_rows(b: Built) -> list[dict[str, Any]]:
    return [r for rows in b.rows.values() for r in rows]


def test_layout_and_manifest_checksums(built: Built) -> None:
    out = built.out
    for stage in (1, 2, 3):
        for split in ("train", "eval"):
            assert (out / f"stage{stage}" / f"{split}.jsonl").is_file()
    assert (out / "REPORT.md").is_file() and (out / "charts" / "token_lengths.svg").is_file()
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} - {"manifest.json"}
    assert set(built.manifest["files_sha256"]) == on_disk
    for rel, digest in built.manifest["files_sha256"].items():
        assert sha256_file(out / rel) == digest
    assert json.loads((out / "manifest.json").read_text()) == built.manifest
    assert not list(out.parent.glob(".out.tmp-*"))  # the staging dir was renamed


def test_every_planted_file_is_dropped_for_its_reason(built: Built) -> None:
    drops = built.manifest["drops"]
    for reason in sorted(set(built.corpus.planted.values())):
        assert drops.get(reason, {}).get("files", 0) >= 1, reason
    present = {(r["source"], r["path"]) for r in _all_rows(built)}
    for key in built.corpus.planted:
        assert key not in present, key
    for key in built.corpus.kept:
        assert key in present, key


def test_secrets_are_scrubbed(built: Built) -> None:
    found = built.manifest["secrets"]
    assert (found["aws_key"], found["private_key"], found["token"]) == (1, 1, 2)
    assert found["email"] >= 1  # replay (stdlib) headers may hold addresses too
    blob = "\n".join(json.dumps(r) for r in _all_rows(built))
    for secret in (
        "AKIAIOSFODNN7ABCDEFG",
        "hunter2hunter2",
        "PRIVATE KEY-----",
        "jane.doe@corp-mail.io",
    ):
        assert secret not in blob
    assert "<AWS_KEY>" in blob and "<EMAIL>" in blob


def test_decontamination_counts_per_eval_set(built: Built) -> None:
    d = built.manifest["decontamination"]
    # The pasted HumanEval prompt matches as text; the pasted solution as code.
    assert d["multipl-e-humaneval-elixir"] == {"files": 1, "ngram": 0, "text": 1, "solution": 0}
    assert d["extra_eval"] == {"files": 1, "ngram": 0, "text": 0, "solution": 1}
    assert d["multipl-e-mbpp-elixir"]["files"] == 0
    assert [e["name"] for e in built.manifest["eval_sets"]][-1] == "extra_eval"
    dropped = {(c["path"], c["problem"], c["kind"]) for c in built.manifest["contaminated_files"]}
    assert dropped == {
        ("lib/human_eval.ex", "multipl-e-humaneval-elixir/HumanEval_0_has_close_elements", "text"),
        ("lib/close.ex", "extra_eval/close_numbers", "solution"),
    }
    assert all(c["source"] == "beta@0.3.0" and c["match"] for c in built.manifest["contaminated_files"])
    assert "HumanEval_0_has_close_elements" in (built.out / "REPORT.md").read_text()


def test_the_shipped_eval_sets_are_the_default(built: Built) -> None:
    # No eval_dir in the config: the builder decontaminates against evals/ in the project.
    sets = {e["name"]: Path(e["path"]) for e in built.manifest["eval_sets"]}
    assert sets["multipl-e-humaneval-elixir"] == HUMANEVAL.resolve()
    assert sets["multipl-e-mbpp-elixir"] == (EVALS / "multipl-e-mbpp-elixir.jsonl").resolve()
    assert built.manifest["config"]["decontam"]["eval_dir"] == str(EVALS.resolve())


def test_newer_version_is_kept_over_its_duplicates(built: Built) -> None:
    sources = {r["source"] for r in _all_rows(built)}
    assert "alpha@1.2.0" in sources and "alpha@1.1.0" not in sources


def test_no_source_in_both_splits(built: Built) -> None:
    split = built.manifest["split"]
    assert {k: v["mode"] for k, v in split["stages"].items()} == dict.fromkeys(
        ("stage1", "stage2", "stage3"), "package"
    )
    assert split["eval_files"] == []
    train = {r["source"] for (_, split), rows in built.rows.items() if split == "train" for r in rows}
    evals = {r["source"] for (_, split), rows in built.rows.items() if split == "eval" for r in rows}
    assert evals, "the 30% eval split should hold some sources"
    assert not (train - {"replay"}) & evals
    assert "replay" not in evals  # replay.in_eval is off by default
    assert built.manifest["sources"]["eval"] >= 2


def test_every_stage_gets_eval_rows_from_a_small_mixed_corpus(tmp_path: Path) -> None:
    """Compiled-only packages take no eval slot, and docs get an eval source of
    their own: one global draw of 1 in 12 would leave two stages without eval."""
    raw = tmp_path / "raw"
    raw.mkdir()
    rows = [
        _package(raw, f"code{i}", "1.0.0", {f"lib/code{i}.ex": elixir_module(f"Code{i}", i)}, 10, ["MIT"])
        for i in range(4)
    ]
    rows += [_package(raw, f"beams{i}", "1.0.0", {"ebin/x.beam": b"\x00BEAM"}, 10, ["MIT"]) for i in range(6)]
    guide = "# Guide {i}\n\nEnum maps a list.\n\n```elixir\niex> Enum.map([1], &(&1 + {i}))\n[{j}]\n```\n"
    rows += [
        _package(raw, f"docs{i}", "1.0.0", {"guides/intro.md": guide.format(i=i, j=1 + i)}, 10, ["Apache-2.0"])
        for i in range(2)
    ]
    _write_manifest(raw, rows)
    config = parse_config(json.dumps({"split": {"eval_fraction": 0.05}, "replay": {"share": 0}, "workers": 1}))
    for seed in range(4):
        result = build(
            BuildRequest(inputs=[str(raw)], out_dir=str(tmp_path / f"out{seed}"), config=config, seed=seed),
            lambda _event: None,
            threading.Event(),
        )
        stages = result.manifest["stages"]
        assert all(stages[f"stage{n}"]["eval"]["rows"] > 0 for n in (1, 2, 3)), (seed, stages)
        assert result.manifest["sources"]["without_files"] == 6


def test_a_handful_of_tiny_packages_still_gets_eval_rows_in_every_stage(tmp_path: Path) -> None:
    """Five tiny packages, each far above 5% of the data, one README: no package
    fits the target, so code is split by file and the single Markdown file by row."""
    raw = tmp_path / "raw"
    raw.mkdir()
    readme = "".join(
        f"# Tiny {i}\n\n## Using tiny part {i}\n\nCall `Tiny.run/1` with a list; it maps each item.\n\n"
        f"```elixir\niex> Tiny.run([{i}])\n[{i + 1}]\n```\n\n"
        for i in range(4)
    )
    rows = [
        _package(
            raw,
            f"tiny{i}",
            "0.1.0",
            {
                f"lib/tiny{i}.ex": elixir_module(f"Tiny{i}", 40 + i, functions=3),
                f"lib/tiny{i}/extra.ex": elixir_module(f"Tiny{i}.Extra", 50 + i, functions=2),
                **({"README.md": readme} if i == 0 else {}),
            },
            10,
            ["MIT"],
        )
        for i in range(5)
    ]
    _write_manifest(raw, rows)
    config = parse_config(json.dumps({"replay": {"share": 0}, "workers": 1}))
    out = tmp_path / "out"
    result = build(
        BuildRequest(inputs=[str(raw)], out_dir=str(out), config=config, seed=1), lambda _e: None, threading.Event()
    )
    m = result.manifest
    assert {k: v["mode"] for k, v in m["split"]["stages"].items()} == {
        "stage1": "file",
        "stage2": "file",
        "stage3": "row",
    }
    for n in (1, 2, 3):
        assert m["stages"][f"stage{n}"]["eval"]["rows"] > 0 and m["stages"][f"stage{n}"]["train"]["rows"] > 0, n
        share = m["split"]["stages"][f"stage{n}"]["eval_token_share"]
        assert 0 < share < 0.5, (n, share)
    assert m["sources"]["eval"] == 0 and m["split"]["eval_files"]
    # Files on disk match the manifest after rows moved between them.
    rows_on_disk = {
        (n, sp): len((out / f"stage{n}" / f"{sp}.jsonl").read_text().splitlines())
        for n in (1, 2, 3)
        for sp in ("train", "eval")
    }
    assert rows_on_disk == {
        (n, sp): m["stages"][f"stage{n}"][sp]["rows"] for n in (1, 2, 3) for sp in ("train", "eval")
    }
    held = {(r["path"]) for r in _read(out)[(1, "eval")]}
    assert held and not held & {r["path"] for r in _read(out)[(1, "train")]}  # a file is in one split
    report = (out / "REPORT.md").read_text()
    assert "| stage3 | row |" in report and "| stage1 | file |" in report


def test_every_row_has_source_path_and_licence(built: Built) -> None:
    for r in _all_rows(built):
        assert r["source"] and r["path"] and r["license"], r
        assert ("text" in r) != ("messages" in r)


def test_fim_rows_reconstruct_their_files(built: Built) -> None:
    style = fim.style("qwen")
    files = {
        (r["source"], r["path"]): r["text"].split("\n", 1)[1]
        for rows in (built.rows[(1, "train")], built.rows[(1, "eval")])
        for r in rows
        if r["source"] != "replay"
    }
    fims = [r for split in ("train", "eval") for r in built.rows[(2, split)] if r["kind"] == "fim"]
    assert len(fims) > 20
    for r in fims:
        whole = r["prefix"] + r["middle"] + r["suffix"]
        if (r["source"], r["path"]) in files:
            assert whole == files[(r["source"], r["path"])]
        prompt = style.spm(r["prefix"], r["suffix"]) if r["fim_mode"] == "spm" else style.psm(r["prefix"], r["suffix"])
        assert r["text"] == prompt + r["middle"]
    # Files without secrets are byte-for-byte the files on disk.
    c = built.corpus
    for r in fims:
        if r["source"] == "alpha@1.2.0" and r["path"] == "lib/alpha.ex":
            assert (
                r["prefix"] + r["middle"] + r["suffix"] == (c.hex_dir / "alpha-1.2.0" / "lib" / "alpha.ex").read_text()
            )
    assert {r["span_kind"] for r in fims} >= {"function_body", "line"}
    assert {r["fim_mode"] for r in fims} == {"psm", "spm"}


def test_stage2_mines_every_pair_kind(built: Built) -> None:
    kinds = {r["kind"] for split in ("train", "eval") for r in built.rows[(2, split)]}
    assert kinds >= {
        "fim",
        "doc_to_impl",
        "spec_to_impl",
        "function_to_test",
        "doctest_result",
        "skeleton_to_module",
        "moduledoc_to_module",
    }
    for r in built.rows[(2, "train")]:
        if "messages" in r:
            assert [m["role"] for m in r["messages"]] == ["system", "user", "assistant"]


def test_stage3_follows_chapter_order_with_licences(built: Built) -> None:
    rows = [r for split in ("train", "eval") for r in built.rows[(3, split)] if r["source"] != "replay"]
    book = [r for r in rows if r["source"] == "guide"]
    assert [r["curriculum_index"] for r in book] == list(range(len(book)))
    chapters = list(dict.fromkeys(r["path"] for r in book))
    assert chapters == [
        "1-introduction.md",
        "2-pattern-matching.md",
        "10-advanced-processes.md",
    ]
    assert {r["kind"] for r in rows} >= {"explanation", "code_qa", "practice"}
    docs = [r for r in rows if r["source"] == "shop_docs@1.0.0"]
    assert docs and {r["license"] for r in docs} == {"Apache-2.0"}
    assert built.manifest["licenses"]["guide"] == "unknown"


def test_replay_is_mixed_into_every_stage(built: Built) -> None:
    for stage in (1, 2, 3):
        replay = [r for r in built.rows[(stage, "train")] if r["source"] == "replay"]
        assert replay, stage
        assert all(r["path"].startswith("python3.") and r["license"] == "PSF-2.0" for r in replay)
        s = built.manifest["stages"][f"stage{stage}"]["train"]
        assert 0 < s["replay_tokens"] <= s["tokens"]


def test_progress_events(built: Built) -> None:
    phases = [e.phase for e in built.events]
    assert phases[0] == "plan" and phases[-1] == "done"
    assert {"scan", "build", "replay", "report"} <= set(phases)
    assert all(e.elapsed_ms >= 0 and e.kind in (PROGRESS, LOG) for e in built.events)


def test_two_builds_are_byte_identical(built: Built, tmp_path: Path) -> None:
    # Inline (one process) against the fixture's two workers: also proves that the
    # parallel order does not leak into the output.
    result = build(
        _request(built.corpus, tmp_path / "again", workers=1),
        lambda p: None,
        threading.Event(),
    )
    first = {p.relative_to(built.out).as_posix(): p.read_bytes() for p in built.out.rglob("*") if p.is_file()}
    second = {
        p.relative_to(result.out_dir).as_posix(): p.read_bytes() for p in result.out_dir.rglob("*") if p.is_file()
    }
    assert first.keys() == second.keys()
    for name, data in first.items():
        assert data == second[name], name


def test_rebuild_replaces_a_previous_build(built: Built, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    req = _request(built.corpus, out, workers=1, replay={"share": 0.0}, stage2={"enabled": False})
    build(req, lambda p: None, threading.Event())
    (out / "stale.txt").write_text("from an older build")
    build(req, lambda p: None, threading.Event())
    assert not (out / "stale.txt").exists()
    assert (out / "stage2" / "train.jsonl").read_text() == ""


def _expect_invalid(req: BuildRequest, needle: str) -> None:
    events: list[Event] = []
    with pytest.raises(InvalidRequest) as info:
        build(req, events.append, threading.Event())
    assert needle in str(info.value)
    assert events == []  # no work started
    out = Path(req.out_dir)
    assert not out.exists() and not list(out.parent.glob(f".{out.name}.tmp-*"))


def test_bad_inputs_fail_before_any_work(built: Built, tmp_path: Path) -> None:
    c = built.corpus
    out = tmp_path / "never"
    good = _request(c, out, workers=1)
    _expect_invalid(
        BuildRequest(inputs=[str(tmp_path / "nope")], out_dir=str(out)),
        "nope does not exist",
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    _expect_invalid(BuildRequest(inputs=[str(empty)], out_dir=str(out)), "has no manifest.jsonl")

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.jsonl").write_text('{"name": "a", "path": "a-1"}\n{"name": "b", "path"\n')
    (broken / "a-1").mkdir()
    _expect_invalid(
        BuildRequest(inputs=[str(broken)], out_dir=str(out)),
        "manifest.jsonl, line 2: not valid JSON",
    )
    # A cut-short last line (a scraper killed mid-append) is not an error...
    (broken / "manifest.jsonl").write_text('{"name": "a", "path": "a-1"}\n{"name": "b", "pa')
    (broken / "a-1" / "a.ex").write_text(CODE)
    from python_worker.dataset.build import prepare

    (only,) = prepare(BuildRequest(inputs=[str(broken)], out_dir=str(out))).inputs
    assert only.rows == 1 and only.partial_last_line
    # ...but the same line with a newline after it is a broken manifest.
    (broken / "manifest.jsonl").write_text('{"name": "a", "path": "a-1"}\n{"name": "b", "pa\n')
    _expect_invalid(BuildRequest(inputs=[str(broken)], out_dir=str(out)), "line 2: not valid JSON")
    (broken / "manifest.jsonl").write_text('{"name": "a", "path": "../../etc"}\n')
    _expect_invalid(
        BuildRequest(inputs=[str(broken)], out_dir=str(out)),
        "line 1: field 'path' must be a relative path",
    )
    (broken / "manifest.jsonl").write_text('{"name": "a", "path": "gone-1"}\n')
    _expect_invalid(
        BuildRequest(inputs=[str(broken)], out_dir=str(out)),
        "line 1: package directory",
    )
    (broken / "manifest.jsonl").write_text('{"name": "a", "path": "a-1", "files": "many"}\n')
    _expect_invalid(
        BuildRequest(inputs=[str(broken)], out_dir=str(out)),
        "field 'files' must be int",
    )

    bad_eval = tmp_path / "bad_eval.jsonl"
    bad_eval.write_text("not json\n")
    _expect_invalid(
        BuildRequest(inputs=good.inputs, out_dir=str(out), eval_files=[str(bad_eval)]),
        "bad_eval.jsonl, line 1",
    )
    cfg = parse_config('{"tokenizer": "/no/such/tokenizer"}')
    _expect_invalid(
        BuildRequest(inputs=good.inputs, out_dir=str(out), config=cfg),
        "tokenizer: /no/such/tokenizer",
    )
    cfg = parse_config('{"stage3": {"book_dirs": ["/no/such/book"]}}')
    _expect_invalid(
        BuildRequest(inputs=good.inputs, out_dir=str(out), config=cfg),
        "book directory /no/such/book",
    )
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "precious.txt").write_text("keep me")
    with pytest.raises(InvalidRequest, match="refusing to replace it"):
        build(
            BuildRequest(inputs=good.inputs, out_dir=str(occupied)),
            lambda p: None,
            threading.Event(),
        )
    assert (occupied / "precious.txt").exists()


def test_cancel_mid_build_leaves_nothing(built: Built, tmp_path: Path) -> None:
    out = tmp_path / "cancelled"
    cancel = threading.Event()

    def progress(p: Event) -> None:
        if p.phase == "build":  # the scan is done and rows are being written
            cancel.set()

    with pytest.raises(Cancelled):
        build(_request(built.corpus, out, workers=2), progress, cancel)
    assert not out.exists() and not list(tmp_path.glob(".cancelled.*"))
