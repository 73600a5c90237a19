"""The vLLM backend: continuous batching and paged attention on CUDA.

Install with the optional extra (CUDA machines only):

    pip install './python_worker[vllm]'

vLLM is imported only when this backend loads a model, so the worker runs (and
lists only "transformers" in Health.backends) where it is not installed. Prompts
are tokenized with the model's HF tokenizer through the same code as the
transformers backend and handed to the engine as token ids, so both backends
see identical prompts. Streaming uses DELTA outputs; closing the iterator early
aborts the request in the engine, which frees its KV cache blocks.

GPU selection: vLLM uses the visible CUDA devices, so run one worker per GPU
with CUDA_VISIBLE_DEVICES set (the host does) rather than DEVICE=cuda:N.

LoRA: vLLM sizes its LoRA buffers once, at engine start, from `max_lora_rank`
(default 16, below our training default of 32) and `max_loras`, and refuses an
adapter that does not fit only when the first request uses it. So the engine
arguments are derived from the adapters' own adapter_config.json files, and an
adapter vLLM cannot serve is rejected before the model loads, saying why
(`lora_engine_args`, `check_adapter`: plain functions, testable without vLLM).

Per-request adapters (`generate(..., adapter=name)`): vLLM takes a
`LoRARequest(name, int_id, path)` with each request and caches the weights by
the int id. `LoraTable` is the plain mapping from our adapter names to those
triples: the adapter applied at load is "default" (the name peft gives it in
the transformers backend), "__base__" is the base model, an adapter added later
with `add_adapter` gets the next id, and any other name is NOT_FOUND. Since the
LoRA buffers are sized at engine start, an adapter added later must fit them
(LoRA enabled, rank within max_lora_rank).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path
from typing import Any, ClassVar

from python_worker.errors import failed_precondition, not_found
from python_worker.serving import prompts
from python_worker.serving.base import (
    Delta,
    FinishReason,
    LoadOptions,
    ModelInfo,
    Prompt,
    SamplingOptions,
)

log = logging.getLogger(__name__)

INSTALL_HINT = "install the extra on a CUDA machine: pip install './python_worker[vllm]'"


# The ranks vLLM's LoRA kernels are built for (its LoRAConfig accepts only these).
VLLM_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)
# Whole-weight copies and LoRA on these layers need vLLM's extra-vocabulary LoRA
# path, which it does not offer for our models (Qwen2 family): train with
# train_embeddings=False, or merge the adapter and serve the merged model.
_EMBEDDING_LAYERS = ("embed_tokens", "lm_head", "wte", "embed_in", "embed_out")
_WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")


@dataclasses.dataclass(frozen=True)
class AdapterSpec:
    """What vLLM needs to know about one adapter directory."""

    path: Path
    rank: int


def check_adapter(adapter_dir: str | Path) -> AdapterSpec:
    """Read `adapter_dir/adapter_config.json`; raise FAILED_PRECONDITION naming the
    reason if vLLM could not serve this adapter, NOT_FOUND if it is missing."""
    path = Path(adapter_dir).expanduser()
    if not path.is_dir():
        raise not_found(f"adapter directory {adapter_dir} does not exist")
    cfg_path = path / "adapter_config.json"
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise not_found(f"{cfg_path} does not exist: not a PEFT adapter directory") from exc
    except (OSError, ValueError) as exc:
        raise failed_precondition(f"{cfg_path} is not readable JSON: {exc}") from exc
    if not isinstance(cfg, dict):
        raise failed_precondition(f"{cfg_path} must hold a JSON object, got {type(cfg).__name__}")

    problems: list[str] = []
    if cfg.get("peft_type", "LORA") != "LORA":
        problems.append(f"peft_type is {cfg.get('peft_type')!r}; vLLM serves only LORA adapters")
    rank = cfg.get("r")
    if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
        problems.append(f"r must be a positive integer, got {rank!r}")
        rank = 0
    elif rank > VLLM_LORA_RANKS[-1]:
        problems.append(f"rank r={rank} is above {VLLM_LORA_RANKS[-1]}, the largest LoRA rank vLLM supports")
    saved = cfg.get("modules_to_save") or []
    if saved:
        embeds = [m for m in saved if any(e in str(m) for e in _EMBEDDING_LAYERS)]
        why = (
            f"trains the full {', '.join(map(str, embeds))} weights, which vLLM's LoRA cannot serve"
            if embeds
            else "vLLM's LoRA does not load whole-module copies"
        )
        problems.append(
            f"modules_to_save={saved!r} {why}; merge the adapter into the base model and serve the merged model"
        )
    targets = cfg.get("target_modules") or []
    if isinstance(targets, str):  # peft allows a regex string; vLLM matches it itself
        targets = [targets]
    lora_embeds = [t for t in targets if any(e in str(t) for e in _EMBEDDING_LAYERS)]
    if lora_embeds:
        problems.append(f"target_modules {lora_embeds!r} put LoRA on embedding layers, which vLLM cannot serve")
    if cfg.get("use_dora"):
        problems.append("use_dora is set; vLLM does not serve DoRA adapters")
    if cfg.get("bias", "none") != "none":
        problems.append(f"bias={cfg.get('bias')!r}; vLLM serves LoRA adapters with bias='none' only")
    if not any((path / f).is_file() for f in _WEIGHT_FILES):
        problems.append(f"no weights ({' or '.join(_WEIGHT_FILES)})")
    if problems:
        raise failed_precondition(f"vLLM cannot serve the adapter {adapter_dir}: " + "; ".join(problems))
    return AdapterSpec(path=path, rank=rank)


def supported_rank(rank: int) -> int:
    """The smallest rank vLLM supports that holds `rank`."""
    for r in VLLM_LORA_RANKS:
        if r >= rank:
            return r
    raise failed_precondition(f"LoRA rank {rank} is above {VLLM_LORA_RANKS[-1]}, the largest vLLM supports")


def lora_engine_args(adapters: list[AdapterSpec]) -> dict[str, Any]:
    """vLLM engine arguments that fit every adapter to be served (none: LoRA off).

    max_lora_rank is rounded up to a rank vLLM supports; max_loras is the number
    of distinct adapters, so all of them can be in one batch.
    """
    if not adapters:
        return {"enable_lora": False}
    return {
        "enable_lora": True,
        "max_lora_rank": supported_rank(max(a.rank for a in adapters)),
        "max_loras": len({a.path.resolve() for a in adapters}),
    }


# The adapter applied at load, and "no adapter": the names the transformers backend uses.
DEFAULT_ADAPTER = "default"
BASE_ADAPTER = "__base__"


@dataclasses.dataclass(frozen=True)
class LoraTarget:
    """The arguments of one vLLM LoRARequest: name, int id (> 0) and path."""

    name: str
    int_id: int
    path: str


class LoraTable:
    """Adapter names to LoRARequest arguments, for an engine started with `engine_args`."""

    def __init__(self, engine_args: dict[str, Any]) -> None:
        self.enabled = bool(engine_args.get("enable_lora"))
        self.max_rank = int(engine_args.get("max_lora_rank", 0))
        self._targets: dict[str, LoraTarget] = {}
        # vLLM caches loaded LoRA weights by int id: an id is never reused, so a
        # name added again with other weights never gets the old ones.
        self._next_id = 1
        self.default: str | None = None

    def add(self, name: str, spec: AdapterSpec) -> LoraTarget:
        if name == BASE_ADAPTER:
            raise failed_precondition(f"{BASE_ADAPTER!r} names the base model; give the adapter another name")
        if not self.enabled:
            raise failed_precondition(
                f"cannot add adapter {name!r}: the vLLM engine started without LoRA (load the model with an "
                "adapter to enable it); its LoRA buffers are sized only at engine start"
            )
        if spec.rank > self.max_rank:
            raise failed_precondition(
                f"cannot add adapter {name!r}: its rank r={spec.rank} is above max_lora_rank={self.max_rank}, "
                "set at engine start from the adapter loaded with the model"
            )
        target = LoraTarget(name, self._next_id, str(spec.path))
        self._next_id += 1
        self._targets[name] = target
        return target

    def resolve(self, adapter: str | None) -> LoraTarget | None:
        """The LoRARequest arguments for a request's adapter; None = the base model.

        None (no adapter named) gets the default, the adapter applied at load."""
        name = adapter or self.default
        if name is None or name == BASE_ADAPTER:
            return None
        try:
            return self._targets[name]
        except KeyError:
            raise not_found(
                f"adapter {name!r} is not loaded; loaded adapters: {sorted(self._targets) or 'none'}"
            ) from None


def import_engine() -> tuple[Any, Any]:
    """(engine class, AsyncEngineArgs): the V1 AsyncLLM where present, else AsyncLLMEngine."""
    try:
        from vllm.engine.arg_utils import AsyncEngineArgs
    except ImportError as exc:
        raise failed_precondition(f"the vllm backend needs vLLM, which is not installed; {INSTALL_HINT}") from exc
    try:
        from vllm.v1.engine.async_llm import AsyncLLM as engine_class
    except ImportError:
        from vllm import AsyncLLMEngine as engine_class
    return engine_class, AsyncEngineArgs


class VllmBackend:
    name: ClassVar[str] = "vllm"

    def __init__(self) -> None:
        self._info: ModelInfo | None = None
        self.engine: Any = None
        self.tokenizer: Any = None
        self.loras = LoraTable({})

    @property
    def info(self) -> ModelInfo:
        if self._info is None:
            raise RuntimeError("VllmBackend used before load()")
        return self._info

    def load(self, options: LoadOptions) -> ModelInfo:
        engine_class, engine_args = import_engine()
        from transformers import AutoTokenizer

        if options.device not in ("auto", "cuda", "cuda:0"):
            raise failed_precondition(
                f"the vllm backend runs on the visible CUDA device(s), got device {options.device}; "
                "select the GPU with CUDA_VISIBLE_DEVICES instead"
            )
        path = options.model
        if path.startswith(("/", "./", "../", "~")):
            path = str(Path(path).expanduser())
            if not Path(path).exists():
                raise not_found(f"model directory {options.model} does not exist")
        # Checked before the (slow) engine start, so a bad adapter fails in seconds.
        adapters = [check_adapter(options.adapter)] if options.adapter else []
        lora_args = lora_engine_args(adapters)
        wanted: dict[str, Any] = {
            "model": path,
            "dtype": options.dtype,
            "disable_log_stats": True,
            **lora_args,
        }
        known = {f.name for f in dataclasses.fields(engine_args)}
        try:
            self.engine = engine_class.from_engine_args(engine_args(**{k: v for k, v in wanted.items() if k in known}))
            self.tokenizer = AutoTokenizer.from_pretrained(path)
        except (OSError, ValueError) as exc:
            raise failed_precondition(f"could not load model {options.model} with vLLM: {exc}") from exc
        self.loras = LoraTable(lora_args)
        if adapters:
            self.loras.add(DEFAULT_ADAPTER, adapters[0])
            self.loras.default = DEFAULT_ADAPTER

        model_config = getattr(self.engine, "model_config", None) or getattr(
            getattr(self.engine, "engine", None), "model_config", None
        )
        self._info = ModelInfo(
            id=options.model,
            path=path,
            backend=self.name,
            device="cuda:0",
            dtype=str(getattr(model_config, "dtype", options.dtype)).removeprefix("torch."),
            context_length=int(getattr(model_config, "max_model_len", 0) or 2048),
            parameters=0,  # vLLM does not expose it without touching its workers
            fim=prompts.detect_fim(self.tokenizer),
            has_chat_template=prompts.has_chat_template(self.tokenizer),
            active_adapter=options.adapter,
        )
        log.info("loaded %s with vLLM (context %d)", path, self._info.context_length)
        return self._info

    def encode(self, prompt: Prompt, fim_limit: int | None = None) -> list[int]:
        return prompts.encode(self.tokenizer, prompt, self.info.fim, self.info.id, fim_limit)

    def add_adapter(self, name: str, adapter_dir: str | Path) -> LoraTarget:
        """Make the adapter in `adapter_dir` servable as `name` (vLLM loads it on first use)."""
        return self.loras.add(name, check_adapter(adapter_dir))

    async def generate(
        self, prompt_ids: list[int], options: SamplingOptions, *, adapter: str | None = None
    ) -> AsyncIterator[Delta]:
        # Resolved before anything starts, so an unknown adapter is NOT_FOUND at once.
        target = self.loras.resolve(adapter)
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        lora_request = None
        if target is not None:
            from vllm.lora.request import LoRARequest

            lora_request = LoRARequest(target.name, target.int_id, target.path)

        # Built explicitly, so the checkpoint's suggested sampling defaults (used only
        # by vLLM's OpenAI server) don't apply: same semantics as transformers.
        params = SamplingParams(
            n=1,
            max_tokens=options.max_tokens,
            temperature=options.temperature,
            top_p=options.top_p,
            seed=options.seed,
            stop=list(options.stop) or None,
            output_kind=RequestOutputKind.DELTA,
            skip_special_tokens=True,
        )
        request_id = uuid.uuid4().hex
        finished = False
        stream = self.engine.generate(
            {"prompt_token_ids": list(prompt_ids)}, params, request_id, lora_request=lora_request
        )
        try:
            async with aclosing(stream):
                async for output in stream:
                    completion = output.outputs[0]
                    reason = None
                    if output.finished:
                        finished = True
                        reason = FinishReason.LENGTH if completion.finish_reason == "length" else FinishReason.STOP
                    yield Delta(completion.text, tuple(completion.token_ids), reason)
        finally:
            if not finished:
                # Cancelled or failed mid-stream: free the request's slot and KV blocks
                # (recent vLLMs abort on close too; an extra abort is a no-op).
                try:
                    await self.engine.abort(request_id)
                except Exception:
                    log.exception("aborting vLLM request %s failed", request_id)

    def close(self) -> None:
        if self.engine is not None and hasattr(self.engine, "shutdown"):
            self.engine.shutdown()
        self.engine = None
