"""Plain text causal LMs: the fallback for any model type without a multimodal adapter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mepbench.backends.adapters.base import ChatAdapter


class TextAdapter(ChatAdapter):
    """Any `AutoModelForCausalLM` with a chat template; media parts are rejected."""

    @classmethod
    def load_model(cls, path: Path, config: Any, torch_dtype: Any) -> Any:
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype)

    @classmethod
    def load_processor(cls, path: Path, config: Any) -> Any:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(path)
