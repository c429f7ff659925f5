"""Typed requests -> OpenAI chat-completions request bodies, with media inlined as base64.

Video goes as `num_frames` uniformly sampled frames, each an `image_url` data URL (the chat API has no
video type that servers agree on); images likewise; audio as an `input_audio` part holding a 16 kHz
16-bit wav, for servers that take audio. Decoding and the blank mask (black frames, silence) are the
hf backend's, so every backend sees the same frames and waveforms.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import Any

import numpy as np

from mepbench.backends.adapters.base import ChatAdapter
from mepbench.media import SAMPLE_RATE
from mepbench.types import AudioPart, ContentPart, GenerationParams, ImagePart, Message, Request, TextPart, VideoPart

IMAGE_MIME = {"jpeg": "image/jpeg", "png": "image/png"}


@dataclass(frozen=True)
class MediaOptions:
    """How media parts are sent: frame count and size, image encoding, and whether audio is sent at all."""

    num_frames: int = 8
    frame_size: int = 112
    image_format: str = "jpeg"
    audio: bool = True

    def __post_init__(self) -> None:
        if self.image_format not in IMAGE_MIME:
            raise ValueError(f"image_format must be one of {sorted(IMAGE_MIME)}, got {self.image_format!r}")


def image_data_url(image: Any, image_format: str = "jpeg") -> str:
    """A PIL image or an (H, W, 3) uint8 array as a base64 data URL."""
    from PIL import Image

    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    quality = {"quality": 90} if image_format == "jpeg" else {}
    image.convert("RGB").save(buffer, format=image_format.upper(), **quality)
    return f"data:{IMAGE_MIME[image_format]};base64,{base64.b64encode(buffer.getvalue()).decode()}"


def wav_base64(wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> str:
    """A mono float waveform as base64 of a 16-bit PCM wav file."""
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, np.clip(wave, -1.0, 1.0), sample_rate, format="WAV", subtype="PCM_16")
    return base64.b64encode(buffer.getvalue()).decode()


class MessageBuilder:
    """Builds the `messages` list of one request (decoding media through the shared adapter loaders)."""

    def __init__(self, options: MediaOptions):
        self.options = options
        self._loader = ChatAdapter(None, None, num_frames=options.num_frames, frame_size=options.frame_size)

    def parts(self, part: ContentPart) -> list[dict[str, Any]]:
        """The OpenAI content parts for one typed part (a video yields one image part per frame)."""
        fmt = self.options.image_format
        if isinstance(part, TextPart):
            return [{"type": "text", "text": part.text}]
        if isinstance(part, VideoPart):
            return [{"type": "image_url", "image_url": {"url": image_data_url(frame, fmt)}}
                    for frame in self._loader.load_video(part)]
        if isinstance(part, ImagePart):
            return [{"type": "image_url", "image_url": {"url": image_data_url(self._loader.load_image(part), fmt)}}]
        if isinstance(part, AudioPart):
            if not self.options.audio:
                raise ValueError(f"audio input is off for this server (audio=false): {part.path}")
            return [{"type": "input_audio",
                     "input_audio": {"data": wav_base64(self._loader.load_audio(part)), "format": "wav"}}]
        raise TypeError(f"unknown content part {part!r}")

    def message(self, message: Message) -> dict[str, Any]:
        """One chat message; text-only content is sent as a plain string, which every server accepts."""
        if all(isinstance(p, TextPart) for p in message.content):
            return {"role": message.role, "content": message.text()}
        return {"role": message.role, "content": [d for p in message.content for d in self.parts(p)]}

    def messages(self, request: Request) -> list[dict[str, Any]]:
        """All messages of a request."""
        if request.zero_features:
            raise ValueError("zero-features masking is not supported by the openai backend (servers take raw "
                             "media); use --mask-mode blank or drop")
        return [self.message(m) for m in request.messages]


def sampling_fields(params: GenerationParams, max_tokens_field: str = "max_tokens",
                    send_seed: bool = True) -> dict[str, Any]:
    """Decoding fields of the body: greedy is temperature 0; the seed goes along where the server honours it."""
    fields: dict[str, Any] = {max_tokens_field: params.max_new_tokens,
                              "temperature": 0.0 if params.greedy else params.temperature,
                              "top_p": 1.0 if params.greedy else params.top_p}
    if send_seed:
        fields["seed"] = params.seed
    return fields
