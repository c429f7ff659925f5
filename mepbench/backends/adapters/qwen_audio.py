"""Qwen2-Audio (audio + text in, text out)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mepbench.backends.adapters.base import ChatAdapter, read_chat_template
from mepbench.media import SAMPLE_RATE
from mepbench.types import Modality


class QwenAudioAdapter(ChatAdapter):
    """`qwen2_audio` checkpoints; an audio part may point at a wav or at a video's audio track."""

    model_types = ("qwen2_audio",)
    parts = frozenset({"audio"})
    modalities = frozenset({Modality.AUDIO, Modality.TEXT})

    @classmethod
    def load_model(cls, path: Path, config: Any, torch_dtype: Any) -> Any:
        from transformers import Qwen2AudioForConditionalGeneration

        return Qwen2AudioForConditionalGeneration.from_pretrained(path, dtype=torch_dtype)

    @classmethod
    def load_processor(cls, path: Path, config: Any) -> Any:
        from transformers import AutoTokenizer, Qwen2AudioProcessor, WhisperFeatureExtractor

        tokenizer = AutoTokenizer.from_pretrained(path)
        return Qwen2AudioProcessor(feature_extractor=WhisperFeatureExtractor.from_pretrained(path),
                                   tokenizer=tokenizer,
                                   chat_template=read_chat_template(path) or tokenizer.chat_template)

    def process(self, text: str, media: dict[str, list]) -> dict[str, Any]:
        if "audio" in media:
            media = {**media, "sampling_rate": SAMPLE_RATE}
        return dict(self.processor(text=[text], return_tensors="pt", **media))
