"""The host refuses bad configuration at start, naming the variable."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.host_process import ROOT, HostProcess, post_json


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"HTTP_PORT": "abc"}, "HTTP_PORT"),
        ({"HTTP_HOST": "0.0.0.0"}, "API_TOKEN"),
        ({"MODEL": "/nonexistent/model-dir"}, "MODEL"),
    ],
)
def test_invalid_settings_stop_the_host_with_a_message(env: dict[str, str], needle: str) -> None:
    result = subprocess.run(
        ["mix", "run", "--no-halt"],
        cwd=ROOT / "elixir",
        env={**os.environ, **env},
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    # The host prints "configuration error: <message>"; the message names the variable.
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("configuration error: ")]
    assert error_lines, result.stderr
    assert needle in error_lines[0], result.stderr


def test_a_model_that_cannot_load_is_reported_not_hidden(tmp_path: Path) -> None:
    """The host stays up; /health and the API say why there is no model."""
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    host = HostProcess(tmp_path / "data", env={"MODEL": str(broken)})
    host.start(until="failed")
    try:
        health = host.health()
        assert health is not None
        assert health["model"] is None
        # Users see the same "failed" and error as before the contract typed them.
        assert health["worker"]["status"] == "failed"
        assert str(broken) in health["worker"]["error"]
        assert not health["worker"]["error"].startswith("failed")

        status, body = post_json(f"{host.url}/v1/completions", {"prompt": "defmodule", "max_tokens": 2})
        assert status == 503
        assert body["error"]["code"] == "model_load_failed"
        assert str(broken) in body["error"]["message"]
    finally:
        host.stop()


def test_with_no_model_set_the_host_serves_the_shipped_code_base(tmp_path: Path) -> None:
    with HostProcess(tmp_path / "data", default_model=True) as host:
        health = host.health()
        assert health is not None
        assert health["model"]["path"] == str(ROOT / "models" / "tiny-code")
        status, body = post_json(
            f"{host.url}/v1/completions",
            {"model": "tiny-code", "prompt": "-module(lists).\n", "max_tokens": 8, "temperature": 0},
        )
        assert status == 200, body
        assert body["choices"][0]["text"]
