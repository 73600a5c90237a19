"""End to end: the job queue's JSON API on the real host (yaws, Mnesia, the worker).

A `build_dataset` job posted over HTTP runs on the host's own worker through
the contract and leaves a dataset on disk. The long Mix tasks (`mix
scrape.local`, `mix curriculum.build`) find the running host and run their
jobs there, not in their own BEAM.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

from tests.corpus import write_corpus
from tests.host_process import ROOT, HostProcess, get_json, post_json

SAMPLE = ROOT / "elixir" / "test" / "devstral_elixir" / "scrape" / "fixtures" / "sample"


def post(host: HostProcess, path: str, body: dict[str, Any], token: str | None) -> tuple[int, Any]:
    return post_json(f"{host.url}{path}", body, token=token)


def test_jobs_api_needs_the_admin_token_and_runs_a_build(host: HostProcess, tmp_path: Path) -> None:
    status, listing = get_json(f"{host.url}/api/jobs")
    assert status == 200 and isinstance(listing["jobs"], list)

    corpus = write_corpus(tmp_path / "raw")
    job = {"type": "build_dataset", "args": {"inputs": [str(corpus)], "out": str(tmp_path / "dataset")}}
    status, error = post(host, "/api/jobs", job, token=None)
    assert status == 401, error

    # With no ADMIN_TOKEN set, the host generated one and saved it for local tools.
    token = (host.data_dir / "admin_token").read_text().strip()
    status, created = post(host, "/api/jobs", job, token=token)
    assert status == 201, created

    deadline = time.monotonic() + 120
    while True:
        status, current = get_json(f"{host.url}/api/jobs/{created['id']}")
        assert status == 200
        if current["state"] in ("succeeded", "failed", "cancelled"):
            break
        assert time.monotonic() < deadline, current
        time.sleep(0.2)

    assert current["state"] == "succeeded", current["error"]
    for stage in ("stage1", "stage2", "stage3"):
        assert (tmp_path / "dataset" / stage / "train.jsonl").exists()

    status, error = post(host, "/api/jobs", {"type": "no_such_type"}, token=token)
    assert status == 400 and "type" in error["error"]["message"]


def mix(host: HostProcess, *argv: str) -> subprocess.CompletedProcess[str]:
    """Runs a Mix task pointed at the host (its HTTP port and its data directory's admin token)."""
    return host.mix(*argv)


def host_jobs(host: HostProcess, job_type: str) -> list[dict[str, Any]]:
    status, listing = get_json(f"{host.url}/api/jobs?type={job_type}")
    assert status == 200
    return listing["jobs"]


def test_mix_tasks_run_their_jobs_on_the_running_host(host: HostProcess, tmp_path: Path) -> None:
    out = tmp_path / "local"
    result = mix(host, "scrape.local", str(SAMPLE), "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"on the host at http://127.0.0.1:{host.port}" in result.stdout, result.stdout
    assert "local: fetched 1" in result.stdout, result.stdout
    assert (out / "manifest.jsonl").exists()

    scrapes = [job for job in host_jobs(host, "scrape") if job["args"].get("out") == str(out)]
    assert [job["state"] for job in scrapes] == ["succeeded"], scrapes
    assert scrapes[0]["args"]["paths"] == [str(SAMPLE)]

    dataset = tmp_path / "dataset"
    corpus = write_corpus(tmp_path / "raw")
    result = mix(host, "curriculum.build", "--input", str(corpus), "--out", str(dataset), "--seed", "3")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "on the host at" in result.stdout, result.stdout
    assert f"dataset written to {dataset}" in result.stdout, result.stdout
    assert (dataset / "stage1" / "train.jsonl").exists()
    builds = [job for job in host_jobs(host, "build_dataset") if job["args"].get("out") == str(dataset)]
    assert [job["state"] for job in builds] == ["succeeded"], builds
