"""Adapters as models and blue-green activation, on the real worker with the tiny model.

The adapters are real peft LoRA adapters of the tiny model with random
(non-identity) weights, so each one changes the greedy output.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Callable
from contextlib import aclosing
from pathlib import Path
from typing import Any

import grpc
import pytest

from python_worker import config as worker_config
from python_worker.app import Worker
from python_worker.proto import worker_pb2 as pb
from python_worker.serving.adapters import candidates, parse_elixir
from python_worker.transport.context import PortAbort, PortContext

PROMPT = "defmodule Stack do\n  def push(stack, item) do\n"


def make_adapter(base: Path, out: Path, seed: int, base_name: str | None = None) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(str(base))
    lora = LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(model, lora)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.5)  # large enough to change the greedy tokens
    peft_model.save_pretrained(str(out))
    if base_name is not None:
        config_path = out / "adapter_config.json"
        adapter_config = json.loads(config_path.read_text())
        adapter_config["base_model_name_or_path"] = base_name
        config_path.write_text(json.dumps(adapter_config))


@pytest.fixture(scope="module")
def adapter_sources(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """RUN/stage1 and RUN/stage2 of the tiny model, and one for another base."""
    root = tmp_path_factory.mktemp("adapter-sources")
    make_adapter(tiny_model, root / "run1" / "stage1", seed=1)
    make_adapter(tiny_model, root / "run1" / "stage2", seed=2)
    make_adapter(tiny_model, root / "other" / "stage1", seed=3, base_name="some-org/another-model-7b")
    (root / "run1" / "stage1" / "metrics.json").write_text('{"eval_loss": 1.5}')
    (root / "run1" / "run.json").write_text(
        json.dumps(
            {
                "status": "completed",
                "promoted_stage": 1,
                "stages": [{"stage": 1, "passed": True}, {"stage": 2, "passed": False, "reason": "forgetting"}],
            }
        )
    )
    return root


@pytest.fixture
def data_dir(adapter_sources: Path, tmp_path: Path) -> Path:
    shutil.copytree(adapter_sources, tmp_path / "adapters")
    return tmp_path


def context() -> PortContext:
    async def write(message: Any) -> None:
        raise AssertionError("unexpected write")

    return PortContext(1, "Test", write)


async def call(method: Callable[..., Any], request: Any) -> Any:
    return await method(request, context())


async def status_of(awaitable: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(PortAbort) as raised:
        await awaitable
    return raised.value.code, raised.value.details


async def started(data_dir: Path, tiny_model: Path) -> Worker:
    settings = worker_config.load({"MODEL": str(tiny_model), "DEVICE": "cpu", "DATA_DIR": str(data_dir)})
    worker = Worker(settings)
    worker.start_loading()
    assert worker._loading is not None
    await worker._loading
    assert worker.models.ready, worker.models.failure
    return worker


async def complete(worker: Worker, model: str = "", max_tokens: int = 12) -> str:
    request = pb.GenerateRequest(model=model, prompt=PROMPT, params=pb.SamplingParams(max_tokens=max_tokens))
    async with aclosing(worker.servicer.Generate(request, context())) as responses:
        return "".join([r.text async for r in responses])


def run(scenario: Callable[[], Any]) -> None:
    import torch

    torch.set_num_threads(1)
    asyncio.run(scenario())


def test_list_adapters_reports_the_registry(data_dir: Path, tiny_model: Path) -> None:
    async def scenario() -> None:
        worker = await started(data_dir, tiny_model)
        try:
            listing = await call(worker.servicer.ListAdapters, pb.ListAdaptersRequest())
            by_name = {a.name: a for a in listing.adapters}
            assert sorted(by_name) == ["other/stage1", "run1/stage1", "run1/stage2"]
            first = by_name["run1/stage1"]
            assert first.run == "run1" and first.stage == 1 and first.rank == 4
            assert first.base_model == str(tiny_model)
            assert json.loads(first.metrics_json) == {"eval_loss": 1.5}
            assert first.HasField("gate_passed") and first.gate_passed and first.promoted
            assert first.created_at.endswith("+00:00")
            second = by_name["run1/stage2"]
            assert second.HasField("gate_passed") and not second.gate_passed and not second.promoted
            assert not by_name["other/stage1"].HasField("gate_passed")
            assert not any(a.loaded or a.active for a in listing.adapters)
            assert listing.active == "" and listing.base_model == str(tiny_model)
        finally:
            await worker.close()

    run(scenario)


def test_activate_switches_outputs_and_rollback_restores(data_dir: Path, tiny_model: Path) -> None:
    async def scenario() -> None:
        worker = await started(data_dir, tiny_model)
        try:
            base = await complete(worker)
            activated = await call(worker.servicer.ActivateAdapter, pb.ActivateAdapterRequest(adapter="run1/stage1"))
            assert activated.active == "run1/stage1" and activated.previous == ""
            # The tiny random model cannot write Elixir: tokens are enough, parsing is recorded.
            assert activated.smoke_test.generated and not activated.smoke_test.require_parse
            assert activated.smoke_test.prompts == 3
            assert list(activated.model.loaded_adapters) == ["run1/stage1"]
            first = await complete(worker)
            assert first != base
            # The adapter is a model id of its own, and the base is still reachable by name.
            assert await complete(worker, f"{tiny_model.name}:run1/stage1") == first

            # Named by its model id; the previous adapter stays loaded.
            await call(
                worker.servicer.ActivateAdapter, pb.ActivateAdapterRequest(adapter=f"{tiny_model.name}:run1/stage2")
            )
            second = await complete(worker)
            assert second not in (base, first)
            assert await complete(worker, f"{tiny_model}:run1/stage1") == first
            state = json.loads((data_dir / "adapters" / "active.json").read_text())
            assert state["active"] == "run1/stage2" and state["previous"] == "run1/stage1"
            models = await call(worker.servicer.ListModels, pb.ListModelsRequest())
            assert list(models.models[0].loaded_adapters) == ["run1/stage1", "run1/stage2"]

            rolled = await call(worker.servicer.RollbackAdapter, pb.RollbackAdapterRequest())
            assert rolled.active == "run1/stage1" and rolled.previous == "run1/stage2"
            assert await complete(worker) == first
            listing = await call(worker.servicer.ListAdapters, pb.ListAdaptersRequest())
            flags = {a.name: (a.loaded, a.active, a.previous) for a in listing.adapters}
            assert flags["run1/stage1"] == (True, True, False)
            assert flags["run1/stage2"] == (True, False, True)

            # Deactivating serves the plain base model again.
            await call(worker.servicer.ActivateAdapter, pb.ActivateAdapterRequest(adapter=""))
            assert await complete(worker) == base
        finally:
            await worker.close()

    run(scenario)


def test_wrong_base_and_corrupt_adapters_are_refused_and_the_live_one_keeps_serving(
    data_dir: Path, tiny_model: Path
) -> None:
    weights = data_dir / "adapters" / "run1" / "stage2" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])

    async def scenario() -> None:
        worker = await started(data_dir, tiny_model)
        try:
            await call(worker.servicer.ActivateAdapter, pb.ActivateAdapterRequest(adapter="run1/stage1"))
            live = await complete(worker)

            code, message = await status_of(
                call(worker.servicer.ActivateAdapter, pb.ActivateAdapterRequest(adapter="other/stage1"))
            )
            assert code == grpc.StatusCode.FAILED_PRECONDITION
            assert "trained on base model some-org/another-model-7b" in message and str(tiny_model) in message

            code, message = await status_of(
                call(worker.servicer.ActivateAdapter, pb.ActivateAdapterRequest(adapter="run1/stage2"))
            )
            assert code == grpc.StatusCode.FAILED_PRECONDITION
            assert "adapter_model.safetensors is unreadable" in message and "run1/stage2" in message

            code, message = await status_of(
                call(worker.servicer.ActivateAdapter, pb.ActivateAdapterRequest(adapter="run1/stage9"))
            )
            assert code == grpc.StatusCode.NOT_FOUND and "run1/stage1" in message

            assert await complete(worker) == live
            listing = await call(worker.servicer.ListAdapters, pb.ListAdaptersRequest())
            assert listing.active == "run1/stage1"
            assert [a.name for a in listing.adapters if a.loaded] == ["run1/stage1"]

            # A model id naming an adapter that is not loaded is unknown, and the answer lists the loaded ones.
            code, message = await status_of(complete(worker, f"{tiny_model.name}:run1/stage2"))
            assert code == grpc.StatusCode.NOT_FOUND and f"{tiny_model}:run1/stage1" in message
        finally:
            await worker.close()

    run(scenario)


def test_an_in_flight_stream_finishes_on_its_adapter(data_dir: Path, tiny_model: Path) -> None:
    async def scenario() -> None:
        worker = await started(data_dir, tiny_model)
        try:
            await call(worker.servicer.ActivateAdapter, pb.ActivateAdapterRequest(adapter="run1/stage1"))
            solo = await complete(worker, max_tokens=48)
            request = pb.GenerateRequest(prompt=PROMPT, params=pb.SamplingParams(max_tokens=48))
            async with aclosing(worker.servicer.Generate(request, context())) as responses:
                first = await anext(responses)
                await call(worker.servicer.ActivateAdapter, pb.ActivateAdapterRequest(adapter="run1/stage2"))
                rest = [r async for r in responses]
            assert first.text + "".join(r.text for r in rest) == solo
            assert rest[-1].usage.completion_tokens == 48
            assert await complete(worker, max_tokens=48) != solo
        finally:
            await worker.close()

    run(scenario)


def test_a_restarted_worker_restores_the_active_adapter(data_dir: Path, tiny_model: Path) -> None:
    async def scenario() -> None:
        worker = await started(data_dir, tiny_model)
        try:
            await call(worker.servicer.ActivateAdapter, pb.ActivateAdapterRequest(adapter="run1/stage1"))
            await call(worker.servicer.ActivateAdapter, pb.ActivateAdapterRequest(adapter="run1/stage2"))
            expected = await complete(worker)
        finally:
            await worker.close()
        again = await started(data_dir, tiny_model)
        try:
            # Restored before the worker reported ready.
            health = await call(again.servicer.Health, pb.HealthRequest())
            assert health.model.active_adapter == "run1/stage2"
            assert list(health.model.loaded_adapters) == ["run1/stage1", "run1/stage2"]
            assert await complete(again) == expected
            rolled = await call(again.servicer.RollbackAdapter, pb.RollbackAdapterRequest())
            assert rolled.active == "run1/stage1"
        finally:
            await again.close()

    run(scenario)


def test_the_parse_check_uses_elixirs_parser() -> None:
    if shutil.which("elixir") is None:
        pytest.skip("elixir is not installed")
    sources = candidates("defmodule A do\n  def f(x) do\n", "x + 1\n  end\nend\nfoo(")
    verdicts, note = parse_elixir([*sources, "defmodule B do"])
    assert note == ""
    assert verdicts == [False, False, True, False, False]


def test_merge_writes_a_full_model_that_generates_like_the_adapter(
    adapter_sources: Path, tiny_model: Path, tmp_path: Path
) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from python_worker.serving.merge import MergeError, main, merge

    adapter = adapter_sources / "run1" / "stage1"
    out = tmp_path / "merged"
    assert main([str(adapter), "--out", str(out)]) == 0
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    with pytest.raises(MergeError, match="already exists"):
        merge(adapter, out)

    tokenizer = AutoTokenizer.from_pretrained(str(out))
    ids = tokenizer(PROMPT, return_tensors="pt").input_ids
    with torch.no_grad():
        merged = AutoModelForCausalLM.from_pretrained(str(out))(input_ids=ids).logits
        applied = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny_model)), str(adapter))
        expected = applied(input_ids=ids).logits
    assert torch.allclose(merged, expected, atol=1e-4)
