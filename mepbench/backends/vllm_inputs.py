"""Typed requests -> vLLM engine prompts (`{"prompt", "multi_modal_data"}`) and sampling settings.

Pure Python (vLLM is not imported), so the construction for every model family is unit-tested
without an engine. Rendering and media decoding are the hf backend's chat adapters, driven with a
tokenizer in place of the processor: vLLM runs the family's HF processor itself, on raw frames and
waveforms, so both backends see the same prompt text, frames and audio.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mepbench.backends.adapters import ChatAdapter, QwenAudioAdapter, QwenOmniAdapter, QwenVLAdapter, adapter_for
from mepbench.backends.adapters.base import read_chat_template
from mepbench.media import SAMPLE_RATE, MediaError
from mepbench.types import GenerationParams, Request

# The token each family's processor expands into media embeddings (one per media item) when the tokenizer
# names none of its own (`tokenizer.video_token` etc., which the HF processors and so vLLM prefer).
PLACEHOLDERS: dict[type[ChatAdapter], dict[str, str]] = {
    QwenOmniAdapter: {"video": "<|VIDEO|>", "audio": "<|AUDIO|>", "image": "<|IMAGE|>"},
    QwenAudioAdapter: {"audio": "<|AUDIO|>"},
    QwenVLAdapter: {"video": "<|video_pad|>", "image": "<|image_pad|>"},
}
# Adapter media keys (processor argument names) -> vLLM `multi_modal_data` modality names.
MM_KEYS = {"videos": "video", "audio": "audio", "images": "image"}
SUPPRESS_BIAS = -100.0  # vLLM clamps logit_bias to [-100, 100]
ZERO_FEATURES_UNSUPPORTED = ("zero-features masking is not supported by the vllm backend: vLLM takes raw media, "
                             "not processor features; use --mask-mode blank or drop")


@dataclass(frozen=True)
class EnginePrompt:
    """One request as vLLM takes it: the rendered chat prompt and its decoded media by modality."""

    prompt: str
    multi_modal_data: dict[str, list[Any]] = field(default_factory=dict)

    def as_vllm(self) -> dict[str, Any]:
        """The `TextPrompt` dict for `LLM.generate` / `AsyncLLM.generate`."""
        if not self.multi_modal_data:
            return {"prompt": self.prompt}
        return {"prompt": self.prompt, "multi_modal_data": self.multi_modal_data}


def model_type_of(path: Path) -> str:
    """`model_type` from a checkpoint's config.json."""
    return json.loads((Path(path) / "config.json").read_text())["model_type"]


def load_adapter(path: Path, num_frames: int = 8, frame_size: int = 112) -> ChatAdapter:
    """The checkpoint's family adapter around its tokenizer and chat template (no model, no processor)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.chat_template = read_chat_template(Path(path)) or tokenizer.chat_template
    return adapter_for(model_type_of(path))(None, tokenizer, num_frames=num_frames, frame_size=frame_size)


def placeholder_tokens(adapter: ChatAdapter) -> dict[str, str]:
    """Media type -> the placeholder token vLLM will expand for this adapter's tokenizer."""
    return {kind: getattr(adapter.tokenizer, f"{kind}_token", None) or token
            for kind, token in PLACEHOLDERS.get(type(adapter), {}).items()}


def error_text(exc: BaseException) -> str:
    """A per-request error message (media errors already name their file)."""
    return str(exc) if isinstance(exc, MediaError) else f"{type(exc).__name__}: {exc}"


def media_limits(adapter_cls: type[ChatAdapter], limit: int | dict[str, int] | None = None) -> dict[str, int]:
    """`limit_mm_per_prompt` for a family: `limit` items of each media type it takes (default 1 each).

    A dict sets types one by one; types the family cannot take are an error."""
    limits = {kind: 1 for kind in sorted(adapter_cls.parts)}
    if isinstance(limit, int):
        return {kind: limit for kind in limits}
    for kind, n in (limit or {}).items():
        if kind not in limits:
            raise ValueError(f"limit_mm_per_prompt: {adapter_cls.__name__} takes no {kind!r} input "
                             f"(it takes {sorted(limits) or 'text only'})")
        limits[kind] = int(n)
    return limits


def _check_placeholders(adapter: ChatAdapter, prompt: str, counts: Counter) -> None:
    """Raise unless the rendered prompt holds one family placeholder per media item of each type."""
    for kind, token in placeholder_tokens(adapter).items():
        found = prompt.count(token)
        if found != counts.get(kind, 0):
            raise ValueError(f"the chat template rendered {found} {token} placeholder(s) for "
                             f"{counts.get(kind, 0)} {kind} part(s)")


def build_engine_prompt(adapter: ChatAdapter, request: Request, limits: dict[str, int]) -> EnginePrompt:
    """Render, check and decode one request for vLLM; raises on any problem (the caller reports it per request).

    Blank parts become black frames / silence of the clip's shape (the adapter's blank mask)."""
    if request.zero_features:
        raise ValueError(ZERO_FEATURES_UNSUPPORTED)
    adapter.check_parts(request)
    counts = Counter(p.type for p in request.media_parts())
    for kind, n in counts.items():
        if n > limits.get(kind, 0):
            raise ValueError(f"{n} {kind} parts exceed limit_mm_per_prompt {kind}={limits.get(kind, 0)} "
                             f"(raise it with --model-arg limit_mm_per_prompt=...)")
    prompt = adapter.render(request)
    _check_placeholders(adapter, prompt, counts)
    media = adapter.media_inputs(request)
    data = {MM_KEYS[key]: items for key, items in media.items()}
    if "audio" in data:
        data["audio"] = [(wave, SAMPLE_RATE) for wave in data["audio"]]
    return EnginePrompt(prompt, data)


def sampling_kwargs(params: GenerationParams, suppress_ids: list[int]) -> dict[str, Any]:
    """`SamplingParams` keywords: greedy is temperature 0; sampled requests carry their own seed so their text
    does not depend on batch composition; media placeholder tokens are suppressed as in the hf backend."""
    kwargs: dict[str, Any] = {"max_tokens": params.max_new_tokens}
    if params.greedy:
        kwargs.update(temperature=0.0, top_p=1.0)
    else:
        kwargs.update(temperature=params.temperature, top_p=params.top_p, seed=params.seed)
    if suppress_ids:
        kwargs["logit_bias"] = {i: SUPPRESS_BIAS for i in suppress_ids}
    return kwargs
