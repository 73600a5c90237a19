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
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path
from typing import Any, ClassVar

from python_worker.backends import prompts
from python_worker.backends.base import (
    Delta,
    FinishReason,
    LoadOptions,
    ModelInfo,
    Prompt,
    SamplingOptions,
)
from python_worker.errors import failed_precondition, not_found

log = logging.getLogger(__name__)

INSTALL_HINT = "install the extra on a CUDA machine: pip install './python_worker[vllm]'"


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
        self._lora: Any = None

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
        wanted: dict[str, Any] = {
            "model": path,
            "dtype": options.dtype,
            "enable_lora": bool(options.adapter),
            "disable_log_stats": True,
        }
        known = {f.name for f in dataclasses.fields(engine_args)}
        try:
            self.engine = engine_class.from_engine_args(engine_args(**{k: v for k, v in wanted.items() if k in known}))
            self.tokenizer = AutoTokenizer.from_pretrained(path)
        except (OSError, ValueError) as exc:
            raise failed_precondition(f"could not load model {options.model} with vLLM: {exc}") from exc
        if options.adapter:
            from vllm.lora.request import LoRARequest

            if not Path(options.adapter).expanduser().is_dir():
                raise not_found(f"adapter directory {options.adapter} does not exist")
            self._lora = LoRARequest("adapter", 1, str(Path(options.adapter).expanduser()))

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

    def encode(self, prompt: Prompt) -> list[int]:
        return prompts.encode(self.tokenizer, prompt, self.info.fim, self.info.id)

    async def generate(self, prompt_ids: list[int], options: SamplingOptions) -> AsyncIterator[Delta]:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

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
            {"prompt_token_ids": list(prompt_ids)}, params, request_id, lora_request=self._lora
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
