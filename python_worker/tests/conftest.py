"""Shared fixtures: the tiny model (built once), a loaded backend, worker subprocess env."""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from python_worker.tests.procs import REPO, TINY_MODEL


@functools.cache
def load_make_tiny_model() -> ModuleType:
    """scripts/make_tiny_model.py as a module (scripts/ is not a package), loaded once."""
    spec = importlib.util.spec_from_file_location("make_tiny_model", REPO / "scripts" / "make_tiny_model.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    """The default model directory, built on first use (as `make` does)."""
    make_tiny_model = load_make_tiny_model()
    if not make_tiny_model.is_complete(TINY_MODEL):
        make_tiny_model.build(TINY_MODEL)
    return TINY_MODEL


@pytest.fixture(scope="session")
def backend(tiny_model: Path) -> Iterator[object]:
    """A TransformersBackend with the tiny model loaded, shared by the in-process tests."""
    import torch

    from python_worker.serving.base import LoadOptions
    from python_worker.serving.transformers_backend import TransformersBackend

    torch.set_num_threads(1)  # 2 shared cores: keep the suite polite and timings stable
    loaded = TransformersBackend()
    loaded.load(LoadOptions(str(tiny_model), device="cpu"))
    yield loaded
    loaded.close()
