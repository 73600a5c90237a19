"""vLLM engine arguments and adapter rejection: plain functions, tested without vLLM."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import grpc
import pytest

from python_worker.errors import WorkerError
from python_worker.serving.vllm_backend import AdapterSpec, check_adapter, lora_engine_args, supported_rank

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def adapter(tmp_path: Path, name: str = "a", weights: bool = True, **overrides: Any) -> Path:
    """An adapter directory as peft saves it for our training defaults, with `overrides`."""
    cfg: dict[str, Any] = {
        "peft_type": "LORA",
        "r": 32,
        "lora_alpha": 64,
        "target_modules": TARGETS,
        "modules_to_save": None,
        "bias": "none",
        "use_dora": False,
        **overrides,
    }
    d = tmp_path / name
    d.mkdir()
    (d / "adapter_config.json").write_text(json.dumps(cfg))
    if weights:
        (d / "adapter_model.safetensors").write_bytes(b"\0" * 8)
    return d


def rejection(path: Path) -> WorkerError:
    with pytest.raises(WorkerError) as raised:
        check_adapter(path)
    return raised.value


def test_our_default_adapter_is_accepted_with_its_rank(tmp_path: Path) -> None:
    d = adapter(tmp_path)
    assert check_adapter(d) == AdapterSpec(path=d, rank=32)


@pytest.mark.parametrize(
    ("rank", "expected"),
    [(1, 8), (8, 8), (9, 16), (16, 16), (32, 32), (33, 64), (200, 256), (257, 320), (321, 512), (512, 512)],
)
def test_rank_rounds_up_to_one_vllm_supports(rank: int, expected: int) -> None:
    assert supported_rank(rank) == expected


def test_engine_args_fit_the_largest_adapter_and_count_them(tmp_path: Path) -> None:
    specs = [
        check_adapter(adapter(tmp_path, "small", r=8)),
        check_adapter(adapter(tmp_path, "ours", r=32)),
        check_adapter(adapter(tmp_path, "odd", r=48)),
    ]
    assert lora_engine_args(specs) == {"enable_lora": True, "max_lora_rank": 64, "max_loras": 3}


def test_default_rank_32_is_above_vllms_default_16(tmp_path: Path) -> None:
    args = lora_engine_args([check_adapter(adapter(tmp_path))])
    assert args["max_lora_rank"] == 32 and args["max_loras"] == 1


def test_the_same_adapter_twice_counts_once(tmp_path: Path) -> None:
    spec = check_adapter(adapter(tmp_path))
    assert lora_engine_args([spec, spec])["max_loras"] == 1


def test_no_adapter_leaves_lora_off() -> None:
    assert lora_engine_args([]) == {"enable_lora": False}


@pytest.mark.parametrize("module", ["embed_tokens", "lm_head"])
def test_trained_embeddings_are_rejected_with_the_reason(tmp_path: Path, module: str) -> None:
    err = rejection(adapter(tmp_path, modules_to_save=[module]))
    assert err.code == grpc.StatusCode.FAILED_PRECONDITION
    assert module in err.message and "modules_to_save" in err.message
    assert "merge" in err.message  # says what to do instead


def test_lora_on_embedding_layers_is_rejected(tmp_path: Path) -> None:
    err = rejection(adapter(tmp_path, target_modules=[*TARGETS, "lm_head"]))
    assert "target_modules" in err.message and "lm_head" in err.message


def test_rank_above_512_is_rejected(tmp_path: Path) -> None:
    err = rejection(adapter(tmp_path, r=1024))
    assert err.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "r=1024" in err.message and "512" in err.message


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"r": 0}, "r must be a positive integer"),
        ({"r": "32"}, "r must be a positive integer"),
        ({"use_dora": True}, "DoRA"),
        ({"bias": "all"}, "bias='all'"),
        ({"peft_type": "IA3"}, "peft_type"),
    ],
)
def test_other_unservable_adapters_name_the_reason(tmp_path: Path, overrides: dict, words: str) -> None:
    assert words in rejection(adapter(tmp_path, **overrides)).message


def test_every_problem_is_listed_in_one_message(tmp_path: Path) -> None:
    msg = rejection(adapter(tmp_path, r=1024, modules_to_save=["embed_tokens"], use_dora=True)).message
    assert "r=1024" in msg and "embed_tokens" in msg and "DoRA" in msg
    assert str(tmp_path / "a") in msg


def test_missing_weights_are_rejected(tmp_path: Path) -> None:
    assert "adapter_model.safetensors" in rejection(adapter(tmp_path, weights=False)).message


def test_missing_directory_or_config_is_not_found(tmp_path: Path) -> None:
    assert rejection(tmp_path / "nope").code == grpc.StatusCode.NOT_FOUND
    (tmp_path / "empty").mkdir()
    err = rejection(tmp_path / "empty")
    assert err.code == grpc.StatusCode.NOT_FOUND and "adapter_config.json" in err.message


def test_unreadable_config_names_the_file(tmp_path: Path) -> None:
    d = tmp_path / "bad"
    d.mkdir()
    (d / "adapter_config.json").write_text("{not json")
    err = rejection(d)
    assert err.code == grpc.StatusCode.FAILED_PRECONDITION and "adapter_config.json" in err.message


class _EngineStarted(Exception):
    """Raised by the fake engine: the arguments were built, nothing more to check."""


def _fake_engine(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Replace vLLM's engine with one that records its arguments (runs without vLLM)."""
    import dataclasses

    from python_worker.serving import vllm_backend

    @dataclasses.dataclass
    class FakeArgs:
        model: str
        dtype: str = "auto"
        enable_lora: bool = False
        max_lora_rank: int = 16  # vLLM's default
        max_loras: int = 1
        disable_log_stats: bool = False

    seen: list[Any] = []

    class FakeEngine:
        @staticmethod
        def from_engine_args(args: FakeArgs) -> None:
            seen.append(args)
            raise _EngineStarted

    monkeypatch.setattr(vllm_backend, "import_engine", lambda: (FakeEngine, FakeArgs))
    return seen


def test_load_starts_the_engine_with_the_adapters_rank(
    tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from python_worker.serving.base import LoadOptions
    from python_worker.serving.vllm_backend import VllmBackend

    seen = _fake_engine(monkeypatch)
    with pytest.raises(_EngineStarted):
        VllmBackend().load(LoadOptions(str(tiny_model), adapter=str(adapter(tmp_path, r=32))))
    assert (seen[0].enable_lora, seen[0].max_lora_rank, seen[0].max_loras) == (True, 32, 1)


def test_load_rejects_an_unservable_adapter_before_the_engine_starts(
    tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from python_worker.serving.base import LoadOptions
    from python_worker.serving.vllm_backend import VllmBackend

    seen = _fake_engine(monkeypatch)
    bad = adapter(tmp_path, modules_to_save=["embed_tokens", "lm_head"])
    with pytest.raises(WorkerError) as raised:
        VllmBackend().load(LoadOptions(str(tiny_model), adapter=str(bad)))
    assert raised.value.code == grpc.StatusCode.FAILED_PRECONDITION and "embed_tokens" in raised.value.message
    assert seen == []


# -- per-request adapters: names to LoRARequest arguments ----------------------


def table(tmp_path: Path, rank: int = 32) -> tuple[Any, AdapterSpec]:
    from python_worker.serving.vllm_backend import LoraTable

    spec = check_adapter(adapter(tmp_path, "loaded", r=rank))
    return LoraTable(lora_engine_args([spec])), spec


def test_each_adapter_name_maps_to_its_own_lora_request(tmp_path: Path) -> None:
    from python_worker.serving.vllm_backend import LoraTarget

    loras, spec = table(tmp_path)
    loras.add("default", spec)
    loras.default = "default"
    later = check_adapter(adapter(tmp_path, "later", r=16))
    assert loras.add("run1/stage2", later) == LoraTarget("run1/stage2", 2, str(later.path))
    assert loras.resolve(None) == LoraTarget("default", 1, str(spec.path))  # no name: the load's adapter
    assert loras.resolve("run1/stage2").int_id == 2
    assert loras.resolve("__base__") is None  # the base model: no LoRARequest


def test_without_a_default_a_request_gets_the_base(tmp_path: Path) -> None:
    loras, spec = table(tmp_path)
    loras.add("a", spec)
    assert loras.resolve(None) is None and loras.resolve("") is None


def test_a_name_added_again_gets_a_new_id(tmp_path: Path) -> None:
    # vLLM caches weights by int id: reusing one would serve the old weights.
    loras, spec = table(tmp_path)
    first = loras.add("a", spec)
    again = loras.add("a", check_adapter(adapter(tmp_path, "retrained")))
    assert again.int_id != first.int_id and loras.resolve("a") == again


def test_an_unknown_adapter_is_not_found_naming_the_loaded_ones(tmp_path: Path) -> None:
    loras, spec = table(tmp_path)
    loras.add("alpha", spec)
    with pytest.raises(WorkerError) as raised:
        loras.resolve("gamma")
    assert raised.value.code == grpc.StatusCode.NOT_FOUND
    assert "gamma" in raised.value.message and "alpha" in raised.value.message


def test_an_adapter_that_does_not_fit_the_started_engine_is_refused(tmp_path: Path) -> None:
    from python_worker.serving.vllm_backend import LoraTable

    loras, _ = table(tmp_path, rank=8)
    with pytest.raises(WorkerError) as raised:
        loras.add("big", check_adapter(adapter(tmp_path, "big", r=32)))
    assert raised.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "r=32" in raised.value.message and "max_lora_rank=8" in raised.value.message
    with pytest.raises(WorkerError) as raised:
        LoraTable(lora_engine_args([])).add("a", check_adapter(adapter(tmp_path, "a")))
    assert "without LoRA" in raised.value.message
    with pytest.raises(WorkerError):
        loras.add("__base__", check_adapter(adapter(tmp_path, "b", r=8)))


def test_generate_sends_the_named_adapters_lora_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """generate(adapter=...) through a fake engine and fake vllm modules (no vLLM needed)."""
    import asyncio
    import sys
    import types

    from python_worker.serving.base import SamplingOptions
    from python_worker.serving.vllm_backend import VllmBackend

    fake = {name: types.ModuleType(name) for name in ("vllm", "vllm.sampling_params", "vllm.lora", "vllm.lora.request")}
    fake["vllm"].SamplingParams = lambda **kw: kw
    fake["vllm.sampling_params"].RequestOutputKind = types.SimpleNamespace(DELTA="delta")
    fake["vllm.lora.request"].LoRARequest = lambda *args: ("LoRARequest", *args)
    for name, module in fake.items():
        monkeypatch.setitem(sys.modules, name, module)

    sent: list[Any] = []

    class Engine:
        async def generate(self, _prompt: Any, _params: Any, _request_id: str, lora_request: Any) -> Any:
            sent.append(lora_request)
            completion = types.SimpleNamespace(text="x", token_ids=[5], finish_reason="length")
            yield types.SimpleNamespace(outputs=[completion], finished=True)

    backend = VllmBackend()
    backend.engine = Engine()
    backend.loras, spec = table(tmp_path)
    backend.add_adapter("run1/stage1", spec.path)

    async def run(adapter: str | None) -> list[Any]:
        return [d async for d in backend.generate([1, 2], SamplingOptions(max_tokens=1), adapter=adapter)]

    assert asyncio.run(run("run1/stage1"))[0].token_ids == (5,)
    asyncio.run(run("__base__"))
    assert sent == [("LoRARequest", "run1/stage1", 1, str(spec.path)), None]
    with pytest.raises(WorkerError) as raised:
        asyncio.run(run("missing"))
    assert raised.value.code == grpc.StatusCode.NOT_FOUND
