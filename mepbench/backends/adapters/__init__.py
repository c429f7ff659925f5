"""Model-family chat adapters, chosen by the checkpoint's `config.model_type`."""

from __future__ import annotations

from mepbench.backends.adapters.base import (
    FEATURE_KEYS,
    ChatAdapter,
    Prepared,
    quiet_progress,
)
from mepbench.backends.adapters.qwen_audio import QwenAudioAdapter
from mepbench.backends.adapters.qwen_omni import QwenOmniAdapter
from mepbench.backends.adapters.qwen_vl import QwenVLAdapter
from mepbench.backends.adapters.text import TextAdapter

FAMILY_ADAPTERS: tuple[type[ChatAdapter], ...] = (QwenOmniAdapter, QwenAudioAdapter, QwenVLAdapter)


def adapter_for(model_type: str) -> type[ChatAdapter]:
    """The adapter class for a model type; plain text causal LMs for anything unlisted."""
    for cls in FAMILY_ADAPTERS:
        if model_type in cls.model_types:
            return cls
    return TextAdapter


__all__ = ["FAMILY_ADAPTERS", "FEATURE_KEYS", "ChatAdapter", "Prepared", "QwenAudioAdapter", "QwenOmniAdapter",
           "QwenVLAdapter", "TextAdapter", "adapter_for", "quiet_progress"]
