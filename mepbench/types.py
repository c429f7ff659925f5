"""Core value types shared by tasks, backends, scorers and the runner.

Every arrow in the data flow (task -> request -> backend -> response -> scorer) passes one of these,
so a backend never sees a task and a task never sees a backend.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Union


class Modality(str, enum.Enum):
    """A perceptual channel of a clip."""

    VIDEO = "video"
    AUDIO = "audio"
    TEXT = "text"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Sample:
    """One clip of a dataset: media paths, subtitle, labels, reference reasoning and cues.

    `absent` lists, per modality, cues known not to be in the clip (the negatives of the faithfulness probes:
    exact on generated data, drawn from other clips' cues on real data). `source` names the data file the sample
    came from so errors can point at it.
    """

    id: str
    video: str | None = None
    audio: str | None = None
    subtitle: str | None = None
    label: Any = None
    reasoning: str | None = None
    cues: dict[str, list[str]] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str | None = None
    absent: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class TextPart:
    """Plain text inside a chat message."""

    text: str
    type: Literal["text"] = "text"


@dataclass(frozen=True)
class VideoPart:
    """A video clip. `blank` asks the backend for black frames of the clip's shape (the blank mask)."""

    path: str
    blank: bool = False
    type: Literal["video"] = "video"


@dataclass(frozen=True)
class AudioPart:
    """An audio track: a wav/flac file, or the audio stream of a video container. `blank` means silence."""

    path: str
    blank: bool = False
    type: Literal["audio"] = "audio"


@dataclass(frozen=True)
class ImagePart:
    """A still image file."""

    path: str
    blank: bool = False
    type: Literal["image"] = "image"


ContentPart = Union[TextPart, VideoPart, AudioPart, ImagePart]
MediaPart = Union[VideoPart, AudioPart, ImagePart]


@dataclass(frozen=True)
class Message:
    """One chat turn with typed content parts."""

    role: Literal["system", "user", "assistant"]
    content: tuple[ContentPart, ...]

    def text(self) -> str:
        """Concatenated text of the message's text parts."""
        return "".join(p.text for p in self.content if isinstance(p, TextPart))


@dataclass(frozen=True)
class GenerationParams:
    """Decoding settings; part of every cache key."""

    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0

    @property
    def greedy(self) -> bool:
        """Whether decoding is deterministic (temperature 0)."""
        return self.temperature <= 0.0


@dataclass(frozen=True)
class Request:
    """What a backend is asked: messages, decoding settings and which modalities to zero as features.

    `sample_id` and `variant` let keyed backends (replay) find their answer; they are not content.
    """

    messages: tuple[Message, ...]
    params: GenerationParams = GenerationParams()
    zero_features: frozenset[Modality] = frozenset()
    sample_id: str = ""
    variant: str = ""

    def media_parts(self) -> list[MediaPart]:
        """All media parts in message order."""
        return [p for m in self.messages for p in m.content if not isinstance(p, TextPart)]


@dataclass
class Response:
    """A backend's answer to one request, or the error that stopped it."""

    text: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the request produced text without error."""
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form for the cache and the results files."""
        return asdict(self)


class SampleError(Exception):
    """A problem with one sample's data: names the file, the sample and the field."""

    def __init__(self, message: str, *, sample_id: str = "", path: str | None = None, field: str = ""):
        self.sample_id, self.path, self.field = sample_id, path, field
        where = ", ".join(x for x in (f"sample {sample_id!r}" if sample_id else "",
                                      f"field {field!r}" if field else "",
                                      f"file {path}" if path else "") if x)
        super().__init__(f"{message} ({where})" if where else message)


__all__ = ["AudioPart", "GenerationParams", "ImagePart", "Message", "Modality", "Request", "Response", "Sample",
           "SampleError", "TextPart", "VideoPart"]
