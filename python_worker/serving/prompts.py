"""Turning a plain, chat or FIM prompt into token ids with a Hugging Face tokenizer.

Shared by every backend that has an HF tokenizer (transformers and vLLM both do),
so a prompt means the same tokens whichever engine runs it.
"""

from __future__ import annotations

from typing import Any

from python_worker import fim
from python_worker.errors import invalid_argument
from python_worker.serving.base import ChatPrompt, FimPrompt, Prompt, TextPrompt


def detect_fim(tokenizer: Any) -> fim.FimStyle | None:
    """The FIM style whose sentinel tokens the tokenizer has (added tokens included)."""
    return fim.detect(tokenizer.get_vocab().keys())


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def encode(
    tokenizer: Any, prompt: Prompt, fim_style: fim.FimStyle | None, model_id: str, fim_limit: int | None = None
) -> list[int]:
    """Token ids of the prompt. A FIM prompt longer than `fim_limit` tokens keeps
    the end of its prefix and the start of its suffix, the code nearest the hole
    (editors send whole files); any other too-long prompt is the caller's error."""
    if isinstance(prompt, TextPrompt):
        # add_special_tokens: models that expect a BOS (Llama, Mistral) get it.
        return list(tokenizer(prompt.text, add_special_tokens=True)["input_ids"])
    if isinstance(prompt, ChatPrompt):
        if not has_chat_template(tokenizer):
            raise invalid_argument(f"model {model_id} has no chat template; send a plain prompt")
        if not prompt.messages:
            raise invalid_argument("chat.messages must not be empty")
        messages = [{"role": role, "content": content} for role, content in prompt.messages]
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        # The template already wrote any BOS; adding special tokens again would double it.
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])
    if isinstance(prompt, FimPrompt):
        if fim_style is None:
            raise invalid_argument(f"model {model_id} has no fill-in-the-middle tokens; send a plain prompt")

        def fim_ids(prefix: str, suffix: str) -> list[int]:
            return list(tokenizer(fim_style.psm(prefix, suffix), add_special_tokens=True)["input_ids"])

        ids = fim_ids(prompt.prefix, prompt.suffix)
        if fim_limit is not None and len(ids) > fim_limit:
            ids = fim.fit_around_hole(tokenizer, prompt.prefix, prompt.suffix, fim_limit, fim_ids) or ids
        return ids
    raise invalid_argument(f"unsupported prompt kind {type(prompt).__name__}")
