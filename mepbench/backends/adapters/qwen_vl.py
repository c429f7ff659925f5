"""Qwen2-VL and Qwen2.5-VL (video + image + text in, text out)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mepbench.backends.adapters.base import ChatAdapter, read_chat_template
from mepbench.backends.numpy_video import processor_without_video_check, torchvision_available, vision_processors
from mepbench.types import Modality


class QwenVLAdapter(ChatAdapter):
    """`qwen2_vl` and `qwen2_5_vl` checkpoints."""

    model_types = ("qwen2_vl", "qwen2_5_vl")
    parts = frozenset({"video", "image"})
    modalities = frozenset({Modality.VIDEO, Modality.TEXT})

    @classmethod
    def _classes(cls, model_type: str) -> tuple[type, type]:
        import transformers as tf

        if model_type == "qwen2_5_vl":
            return tf.Qwen2_5_VLForConditionalGeneration, tf.Qwen2_5_VLProcessor
        return tf.Qwen2VLForConditionalGeneration, tf.Qwen2VLProcessor

    @classmethod
    def load_model(cls, path: Path, config: Any, torch_dtype: Any) -> Any:
        return cls._classes(config.model_type)[0].from_pretrained(path, dtype=torch_dtype)

    @classmethod
    def load_processor(cls, path: Path, config: Any) -> Any:
        from transformers import AutoTokenizer

        proc_cls = cls._classes(config.model_type)[1]
        if not torchvision_available():
            proc_cls = processor_without_video_check(proc_cls)
        tokenizer = AutoTokenizer.from_pretrained(path)
        image, video = vision_processors(path)
        return proc_cls(image_processor=image, tokenizer=tokenizer, video_processor=video,
                        chat_template=read_chat_template(path) or tokenizer.chat_template)
