"""Serving: the generation backends behind one interface (base.Backend).

Backends are looked up by name and imported lazily: importing this package
pulls in neither torch nor vLLM, so the worker answers Health at once while the
default model loads in the background.
"""

from __future__ import annotations

import importlib
import importlib.util

from python_worker.errors import invalid_argument
from python_worker.serving.base import Backend

# name -> "module:Class"; a new backend is one line here plus its module.
REGISTRY: dict[str, str] = {
    "transformers": "python_worker.serving.transformers_backend:TransformersBackend",
    "vllm": "python_worker.serving.vllm_backend:VllmBackend",
}

# The package each backend needs, checked without importing it.
_REQUIRES = {"transformers": "transformers", "vllm": "vllm"}


def available() -> list[str]:
    """Backends whose engine package is installed in this environment."""
    return [name for name in REGISTRY if importlib.util.find_spec(_REQUIRES[name]) is not None]


def create(name: str) -> Backend:
    """A fresh, unloaded backend object."""
    target = REGISTRY.get(name)
    if target is None:
        raise invalid_argument(f"unknown backend {name!r}; expected one of {sorted(REGISTRY)}")
    module_name, _, class_name = target.partition(":")
    backend_class = getattr(importlib.import_module(module_name), class_name)
    return backend_class()
