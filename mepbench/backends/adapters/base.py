"""The chat-adapter base: typed requests -> one model family's processor inputs, one request at a time.

Each request is rendered, its media decoded and run through the processor on its own, the
zero-features mask is applied to its own feature tensors, and only then are requests collated into a
left-padded batch. So a bad file fails only its request, and masked features are exactly that
request's slice of the concatenated feature tensors (Qwen processors concatenate media across rows).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from mepbench.media import MediaError, decode_audio, decode_video
from mepbench.types import AudioPart, ImagePart, Modality, Request, TextPart, VideoPart

TOKEN_KEYS = ("input_ids", "attention_mask", "mm_token_type_ids", "token_type_ids")
FEATURE_KEYS: dict[Modality, tuple[str, ...]] = {
    Modality.VIDEO: ("pixel_values_videos", "pixel_values"),  # images count as the visual modality
    Modality.AUDIO: ("input_features",),
}
PLACEHOLDER_TOKENS = ("<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>", "<|IMAGE|>", "<|VIDEO|>", "<|vision_bos|>",
                      "<|vision_eos|>", "<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>",
                      "<|vision_pad|>")
PART_MODALITY = {"video": Modality.VIDEO, "image": Modality.VIDEO, "audio": Modality.AUDIO}


@contextlib.contextmanager
def quiet_progress() -> Iterator[None]:
    """Hide transformers' weight loading/saving progress bars for the duration of the block."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def read_chat_template(path: Path) -> str | None:
    """The processor chat template saved beside a checkpoint (chat_template.jinja / .json), if any."""
    if (path / "chat_template.jinja").is_file():
        return (path / "chat_template.jinja").read_text()
    if (path / "chat_template.json").is_file():
        return json.loads((path / "chat_template.json").read_text()).get("chat_template")
    return None


@dataclass
class Prepared:
    """One request's processor outputs (batch dimension 1, zero-features applied), ready to collate.

    `prep_s` is the wall time spent decoding and processing it (part of its reported latency)."""

    inputs: dict[str, Any]
    prompt_tokens: int
    prep_s: float = 0.0


class ChatAdapter:
    """Family-specific loading and input building; subclasses set the class attributes and `load_*`.

    `parts` are the media part types the family accepts; `modalities` is what the backend advertises.
    """

    model_types: ClassVar[tuple[str, ...]] = ()
    parts: ClassVar[frozenset[str]] = frozenset()
    modalities: ClassVar[frozenset[Modality]] = frozenset({Modality.TEXT})

    def __init__(self, model: Any, processor: Any, *, num_frames: int = 8, frame_size: int = 112):
        self.model, self.processor = model, processor
        self.num_frames, self.frame_size = num_frames, frame_size

    @classmethod
    def load(cls, path: Path, config: Any, *, dtype: str = "float32", device: str = "cpu",
             num_frames: int = 8, frame_size: int = 112) -> ChatAdapter:
        """Load model and processor from a local checkpoint directory."""
        import torch

        with quiet_progress():
            model = cls.load_model(path, config, getattr(torch, dtype))
        return cls(model.to(device).eval(), cls.load_processor(path, config), num_frames=num_frames,
                   frame_size=frame_size)

    @classmethod
    def load_model(cls, path: Path, config: Any, torch_dtype: Any) -> Any:
        """The model, in `torch_dtype`, from a checkpoint directory."""
        raise NotImplementedError

    @classmethod
    def load_processor(cls, path: Path, config: Any) -> Any:
        """The processor (or tokenizer, for text models) from a checkpoint directory."""
        raise NotImplementedError

    @property
    def tokenizer(self) -> Any:
        return getattr(self.processor, "tokenizer", self.processor)

    # -- rendering -------------------------------------------------------------------------------

    def content_dict(self, part: Any) -> dict[str, Any]:
        """A typed part as the chat template's content dict (Qwen conventions)."""
        if isinstance(part, TextPart):
            return {"type": "text", "text": part.text}
        if isinstance(part, AudioPart):
            return {"type": "audio", "audio": part.path, "audio_url": part.path}
        return {"type": part.type, part.type: part.path}

    def check_parts(self, request: Request) -> None:
        """Raise when the request carries media this family cannot take or masks it cannot apply."""
        for part in request.media_parts():
            if part.type not in self.parts:
                raise ValueError(f"{type(self).__name__} cannot take {part.type} input ({part.path})")
        for m in request.zero_features:
            if m not in FEATURE_KEYS:
                raise ValueError(f"zero-features is not defined for modality {m}")

    def render(self, request: Request) -> str:
        """The prompt text: the chat template applied to the typed messages, with a generation prompt."""
        conversation = [{"role": m.role, "content": [self.content_dict(p) for p in m.content]}
                        for m in request.messages]
        return self.processor.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)

    # -- media -----------------------------------------------------------------------------------

    def load_video(self, part: VideoPart) -> np.ndarray:
        """(T, size, size, 3) uint8 frames; black frames of that shape for a blank part."""
        if part.blank:
            if not Path(part.path).is_file():
                raise MediaError(part.path, "missing media file")
            return np.zeros((self.num_frames, self.frame_size, self.frame_size, 3), np.uint8)
        return decode_video(part.path, self.num_frames, self.frame_size)

    def load_audio(self, part: AudioPart) -> np.ndarray:
        """16 kHz mono waveform; silence of the same length for a blank part."""
        wave = decode_audio(part.path)
        return np.zeros_like(wave) if part.blank else wave

    def load_image(self, part: ImagePart) -> Any:
        """RGB PIL image; a black image of the same size for a blank part."""
        from PIL import Image

        try:
            with Image.open(part.path) as im:
                image = im.convert("RGB")
        except FileNotFoundError as exc:
            raise MediaError(part.path, "missing media file") from exc
        except Exception as exc:
            raise MediaError(part.path, f"cannot decode image ({type(exc).__name__}: {exc})") from exc
        return Image.new("RGB", image.size) if part.blank else image

    def media_inputs(self, request: Request) -> dict[str, list]:
        """Decoded media in message order, keyed by the processor's argument names."""
        loaders = {"video": ("videos", self.load_video), "audio": ("audio", self.load_audio),
                   "image": ("images", self.load_image)}
        media: dict[str, list] = {}
        for part in request.media_parts():
            key, load = loaders[part.type]
            media.setdefault(key, []).append(load(part))
        return media

    # -- processing ------------------------------------------------------------------------------

    def process(self, text: str, media: dict[str, list]) -> dict[str, Any]:
        """Run the processor on one rendered prompt and its decoded media."""
        return dict(self.processor(text=[text], return_tensors="pt", **media))

    def prepare(self, request: Request) -> Prepared:
        """Render, decode, process and apply zero-features for one request (raises on any problem)."""
        start = time.perf_counter()
        self.check_parts(request)
        inputs = self.process(self.render(request), self.media_inputs(request))
        for modality in request.zero_features:
            for key in FEATURE_KEYS[modality]:
                if key in inputs:
                    inputs[key] = inputs[key].new_zeros(inputs[key].shape)
        return Prepared(inputs, int(inputs["attention_mask"].sum()), time.perf_counter() - start)

    def collate(self, prepared: list[Prepared]) -> dict[str, Any]:
        """Left-pad token tensors and concatenate per-request feature tensors in request order."""
        import torch

        width = max(p.inputs["input_ids"].shape[1] for p in prepared)
        pad_id = self.pad_token_id()
        batch: dict[str, Any] = {}
        for key in dict.fromkeys(k for p in prepared for k in p.inputs):
            values = [p.inputs[key] for p in prepared if key in p.inputs]
            if key in TOKEN_KEYS:
                fill = pad_id if key == "input_ids" else 0
                batch[key] = torch.cat([torch.nn.functional.pad(v, (width - v.shape[1], 0), value=fill)
                                        for v in values])
            else:
                batch[key] = torch.cat([torch.as_tensor(v) for v in values])
        return batch

    def build_batch(self, requests: list[Request]) -> dict[str, Any]:
        """`prepare` + `collate` (for callers that want the model inputs of well-formed requests)."""
        return self.collate([self.prepare(r) for r in requests])

    # -- generation helpers ----------------------------------------------------------------------

    def pad_token_id(self) -> int:
        tok = self.tokenizer
        return tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id

    def eos_token_ids(self) -> list[int]:
        """End-of-turn ids: the generation config's eos plus the tokenizer's."""
        ids = getattr(self.model.generation_config, "eos_token_id", None)
        ids = [] if ids is None else [ids] if isinstance(ids, int) else list(ids)
        if self.tokenizer.eos_token_id is not None:
            ids.append(self.tokenizer.eos_token_id)
        return list(dict.fromkeys(ids))

    def suppress_token_ids(self) -> list[int]:
        """Media placeholder/marker ids present in the vocabulary; a sampled one would break re-feeding."""
        vocab = self.tokenizer.get_vocab()
        return sorted({vocab[t] for t in PLACEHOLDER_TOKENS if t in vocab})
