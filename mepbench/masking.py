"""Modality masks: expand a sample into named variants (`full`, `mask:video`, ...) under one mask mode.

Modes: `drop` omits the part (the prompt says the modality is absent), `blank` keeps the part but makes
it black frames / silence / an empty subtitle, `zero-features` keeps the input and asks the backend to
zero the processor features of that modality (PAPO/OPPO style). Text has no processor features, so
under `zero-features` a text mask blanks the subtitle; `effective_mode` records that.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from mepbench.types import AudioPart, Modality, Sample, VideoPart


class MaskMode(str, enum.Enum):
    """How a masked modality is removed from the model input."""

    DROP = "drop"
    BLANK = "blank"
    ZERO_FEATURES = "zero-features"


@dataclass(frozen=True)
class Variant:
    """A named input condition: all modalities (`full`) or one modality masked."""

    masked: Modality | None = None

    @property
    def name(self) -> str:
        """`full` or `mask:<modality>`."""
        return "full" if self.masked is None else f"mask:{self.masked.value}"

    @classmethod
    def parse(cls, name: str) -> "Variant":
        """Inverse of `name`; raises ValueError naming the valid forms."""
        if name == "full":
            return cls()
        prefix, _, modality = name.partition(":")
        if prefix != "mask" or modality not in {m.value for m in Modality}:
            raise ValueError(f"unknown variant {name!r}: use full, mask:video, mask:audio or mask:text")
        return cls(Modality(modality))


FULL = Variant()
ALL_VARIANTS = (FULL, *(Variant(m) for m in Modality))


@dataclass(frozen=True)
class MaskedInput:
    """The inputs a prompt is rendered from after masking: media parts, subtitle, feature masks."""

    video: VideoPart | None
    audio: AudioPart | None
    subtitle: str | None
    zero_features: frozenset[Modality] = frozenset()


def effective_mode(modality: Modality | None, mode: MaskMode) -> MaskMode | None:
    """The mode actually applied to `modality` (None for the full variant)."""
    if modality is None:
        return None
    if modality is Modality.TEXT and mode is MaskMode.ZERO_FEATURES:
        return MaskMode.BLANK
    return mode


def apply_mask(sample: Sample, variant: Variant, mode: MaskMode) -> MaskedInput:
    """The sample's inputs with `variant.masked` removed by `mode`; other modalities untouched."""
    video = VideoPart(sample.video) if sample.video else None
    audio = AudioPart(sample.audio) if sample.audio else None
    subtitle = sample.subtitle
    zero: frozenset[Modality] = frozenset()
    how = effective_mode(variant.masked, mode)
    if variant.masked is Modality.TEXT:
        subtitle = None if how is MaskMode.DROP else ""
    elif variant.masked is not None:
        if how is MaskMode.ZERO_FEATURES:
            zero = frozenset({variant.masked})
        elif variant.masked is Modality.VIDEO:
            video = None if how is MaskMode.DROP or video is None else VideoPart(video.path, blank=True)
        else:
            audio = None if how is MaskMode.DROP or audio is None else AudioPart(audio.path, blank=True)
    return MaskedInput(video=video, audio=audio, subtitle=subtitle, zero_features=zero)
