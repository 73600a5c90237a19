"""Fixtures for the end-to-end suite: one real host (`make run`) per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.host_process import TINY_MODEL, HostProcess


@pytest.fixture(scope="session")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostProcess]:
    if not (TINY_MODEL / "config.json").exists():
        pytest.fail(f"the tiny model is missing at {TINY_MODEL}; run `make model`")
    data_dir: Path = tmp_path_factory.mktemp("host-data")
    with HostProcess(data_dir) as running:
        yield running
