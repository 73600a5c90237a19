"""The host refuses bad configuration at start, naming the variable."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.host_process import ROOT


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
    assert f"configuration error: {needle}" in result.stderr or needle in result.stderr
