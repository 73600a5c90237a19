"""Loading the base model (NF4 or full precision) and putting a LoRA adapter on it."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

# On CPU, bitsandbytes first tries optimised 4-bit kernels from the `kernels`
# package, which downloads them from the model hub at run time (unreachable
# here), warns, and uses its built-in CPU path: the warning is noise.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)

from python_worker.training.config import TrainSettings


@dataclass
class Placement:
    device: str  # "cuda" or "cpu"
    dtype: torch.dtype  # compute dtype

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).removeprefix("torch.")


def placement() -> Placement:
    """The device, and the compute dtype it does well: bf16 where the GPU has it, fp32 on CPU.

    fp16 on older GPUs rather than fp32: QLoRA's point is memory, and fp16
    compute with fp32 LoRA weights is stable enough with gradient clipping.
    """
    if torch.cuda.is_available():
        if torch.cuda.is_bf16_supported():
            return Placement("cuda", torch.bfloat16)
        return Placement("cuda", torch.float16)
    return Placement("cpu", torch.float32)


def load_tokenizer(path: str) -> Any:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_base(path: str, quantization: str, where: Placement) -> Any:
    """The base causal LM, NF4-quantised (QLoRA) or in the compute dtype."""
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": where.dtype}
    if quantization == "nf4":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=where.dtype,
        )
        if where.device == "cuda":
            # Quantised weights cannot be moved after loading: place them now.
            kwargs["device_map"] = {"": torch.cuda.current_device()}
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    if quantization == "nf4":
        from peft import prepare_model_for_kbit_training

        # Casts norms/embeddings to fp32 for stable training. Gradient
        # checkpointing is left to the trainer, which enables it with the
        # non-reentrant implementation.
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        if where.device == "cpu":
            _keep_cpu_nf4_layout(model)
    elif where.device == "cuda":
        model.to("cuda")
    model.config.use_cache = False  # the KV cache is useless (and wasteful) while training
    return model


def _keep_cpu_nf4_layout(model: Any) -> None:
    """Stop bitsandbytes repacking NF4 weights for its CPU inference kernel.

    On CPUs with AVX512-BF16, the first no-grad eval-mode forward of a Linear4bit
    rewrites its weight in place into a CPU-only packed layout with bf16 scales.
    In a training job that happens at every evaluation, so eval losses would come
    from different numerics than training, the layout is then used for training
    too, and the repacking fails outright on layers whose input width is not a
    multiple of the 64-weight quantisation block (the tiny model's 352-wide MLP).
    """
    import bitsandbytes as bnb

    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = False


def embedding_modules(model: Any) -> list[str]:
    """Short names of the input and output embedding modules (e.g. embed_tokens, lm_head)."""
    wanted = {
        id(model.get_input_embeddings()): None,
        id(model.get_output_embeddings()): None,
    }
    names = []
    for name, module in model.named_modules():
        if id(module) in wanted and name:
            short = name.rsplit(".", 1)[-1]
            if short not in names:
                names.append(short)
    return names


def ties_embeddings(model: Any) -> bool:
    inp, out = model.get_input_embeddings(), model.get_output_embeddings()
    return out is not None and out.weight is inp.weight


def attach_adapter(model: Any, s: TrainSettings, init_adapter: str = "") -> Any:
    """A trainable PeftModel: continuing `init_adapter`, or a fresh LoRA adapter."""
    from peft import LoraConfig, PeftModel, get_peft_model

    if init_adapter:
        # Continue the previous stage's adapter (see README: why not merge).
        model = PeftModel.from_pretrained(model, init_adapter, is_trainable=True)
        if not s.lora.train_embeddings:
            # Embeddings trained in stage 1 ride along in the adapter but stay frozen:
            # later stages are too small to move them without harm.
            for name, param in model.named_parameters():
                if "modules_to_save" in name:
                    param.requires_grad_(False)
        return model
    emb = embedding_modules(model) if s.lora.train_embeddings else None
    config = LoraConfig(
        r=s.lora.r,
        lora_alpha=s.lora.alpha,
        lora_dropout=s.lora.dropout,
        target_modules=list(s.lora.target_modules),
        modules_to_save=emb,
        # A tied lm_head must stay tied to the trained embeddings, or the two copies drift.
        ensure_weight_tying=bool(emb) and ties_embeddings(model),
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def embedding_parameters(model: Any) -> list[torch.nn.Parameter]:
    """Trainable full-weight embedding copies (peft's modules_to_save)."""
    return [p for n, p in model.named_parameters() if p.requires_grad and "modules_to_save" in n]


def adapter_has_embeddings(adapter_dir: str | Path) -> bool:
    cfg = json.loads((Path(adapter_dir) / "adapter_config.json").read_text(encoding="utf-8"))
    return bool(cfg.get("modules_to_save"))


def load_for_eval(model_path: str, adapter: str, where: Placement) -> Any:
    """Base model (+ adapter) in the compute dtype, as a server would run it."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=where.dtype)
    model.to(where.device)
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    model.eval()
    return model


def count_parameters(model: Any) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total
