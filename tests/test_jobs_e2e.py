"""End to end: the job queue's JSON API on the real host (yaws, Mnesia, the worker).

A `build_dataset` job posted over HTTP runs on the host's own worker through
the contract and leaves a dataset on disk.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.corpus import write_corpus
from tests.host_process import HostProcess, get_json, post_json


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
