"""The vLLM backend: real generation where vLLM is installed (CUDA), clear errors where not."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path

import grpc
import pytest

from python_worker import serving
from python_worker.errors import WorkerError
from python_worker.serving.base import LoadOptions, SamplingOptions, TextPrompt

HAS_VLLM = importlib.util.find_spec("vllm") is not None


def test_the_module_imports_without_vllm() -> None:
    backend = serving.create("vllm")  # vllm itself is imported only by load()
    assert backend.name == "vllm"
    assert ("vllm" in serving.available()) == HAS_VLLM


@pytest.mark.skipif(HAS_VLLM, reason="vLLM is installed here")
def test_loading_without_vllm_says_how_to_install_it(tiny_model: Path) -> None:
    with pytest.raises(WorkerError) as raised:
        serving.create("vllm").load(LoadOptions(str(tiny_model)))
    assert raised.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "python_worker[vllm]" in raised.value.message


def test_generates_and_stops_like_the_transformers_backend(tiny_model: Path) -> None:
    pytest.importorskip(
        "vllm", reason="vLLM is not installed: it needs CUDA wheels; install python_worker[vllm] on a GPU machine"
    )
    import torch

    if not torch.cuda.is_available():
        pytest.skip("vLLM needs a CUDA device")
    backend = serving.create("vllm")
    backend.load(LoadOptions(str(tiny_model)))
    try:
        ids = backend.encode(TextPrompt("defmodule Foo do"))

        async def run(options: SamplingOptions) -> list:
            return [d async for d in backend.generate(ids, options)]

        deltas = asyncio.run(run(SamplingOptions(max_tokens=16)))
        assert sum(len(d.token_ids) for d in deltas) == 16
        assert deltas[-1].finish_reason is not None and deltas[-1].finish_reason.value == "length"
        text = "".join(d.text for d in deltas)
        stop = text[4:7]
        cut = asyncio.run(run(SamplingOptions(max_tokens=16, stop=(stop,))))
        assert "".join(d.text for d in cut) == text[: text.index(stop)]
    finally:
        backend.close()
