"""Qwen2.5-Omni thinker (video + audio + image + text in, text out)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mepbench.backends.adapters.base import ChatAdapter, read_chat_template
from mepbench.backends.numpy_video import processor_without_video_check, torchvision_available, vision_processors
from mepbench.types import Modality

THINKER_PREFIX = {r"^thinker\.": ""}


class QwenOmniAdapter(ChatAdapter):
    """`qwen2_5_omni_thinker` checkpoints, and full `qwen2_5_omni` ones loaded as their thinker only."""

    model_types = ("qwen2_5_omni_thinker", "qwen2_5_omni")
    parts = frozenset({"video", "audio", "image"})
    modalities = frozenset(Modality)

    @classmethod
    def load_model(cls, path: Path, config: Any, torch_dtype: Any) -> Any:
        from transformers import Qwen2_5OmniThinkerForConditionalGeneration as Thinker

        if config.model_type == "qwen2_5_omni":
            return Thinker.from_pretrained(path, config=config.thinker_config, dtype=torch_dtype,
                                           key_mapping=THINKER_PREFIX)
        return Thinker.from_pretrained(path, dtype=torch_dtype)

    @classmethod
    def load_processor(cls, path: Path, config: Any) -> Any:
        from transformers import AutoTokenizer, Qwen2_5OmniProcessor, WhisperFeatureExtractor

        tokenizer = AutoTokenizer.from_pretrained(path)
        image, video = vision_processors(path)
        proc_cls = Qwen2_5OmniProcessor if torchvision_available() else processor_without_video_check(
            Qwen2_5OmniProcessor)
        return proc_cls(image_processor=image, video_processor=video,
                        feature_extractor=WhisperFeatureExtractor.from_pretrained(path), tokenizer=tokenizer,
                        chat_template=read_chat_template(path) or tokenizer.chat_template)
