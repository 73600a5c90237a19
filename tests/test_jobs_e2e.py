"""End to end: the job queue's JSON API on the real host (yaws, Mnesia, the worker).

A `build_dataset` job posted over HTTP runs on the host's own worker through
the contract and leaves a dataset on disk.
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.host_process import HostProcess, get_json


def post(host: HostProcess, path: str, body: dict[str, Any], token: str | None) -> tuple[int, Any]:
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    request = urllib.request.Request(f"{host.url}{path}", json.dumps(body).encode(), headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def write_corpus(root: Path) -> Path:
    rows = []
    for n, name in enumerate(["alpha", "beta", "gamma"], start=1):
        package = root / f"{name}-0.{n}.0"
        (package / "lib").mkdir(parents=True)
        (package / "lib" / f"{name}.ex").write_text(
            f'defmodule {name.title()} do\n  @doc "Adds {n}."\n  def add(x), do: x + {n}\n\n'
            f"  def names(list), do: Enum.map(list, &to_string/1)\nend\n"
        )
        (package / "metadata.json").write_text(json.dumps({"name": name, "version": f"0.{n}.0"}))
        rows.append(
            {
                "name": name,
                "version": f"0.{n}.0",
                "licenses": ["MIT"],
                "sha256": "0" * 64,
                "files": 1,
                "path": package.name,
            }
        )
    (root / "manifest.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return root


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
