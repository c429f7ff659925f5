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


_ORDER = {m: i for i, m in enumerate(Modality)}


@dataclass(frozen=True)
class Variant:
    """A named input condition: all modalities (`full`), or some masked (`mask:video`,
    `mask:video+audio`); `only:text` is shorthand for masking every other modality."""

    masked: frozenset[Modality] = frozenset()

    @classmethod
    def of(cls, *modalities: Modality) -> "Variant":
        """The variant masking `modalities`."""
        return cls(frozenset(modalities))

    @property
    def name(self) -> str:
        """`full` or `mask:<m>[+<m>...]` in video, audio, text order."""
        if not self.masked:
            return "full"
        return "mask:" + "+".join(m.value for m in sorted(self.masked, key=_ORDER.__getitem__))

    @classmethod
    def parse(cls, name: str) -> "Variant":
        """Inverse of `name`, also accepting `only:<m>`; raises ValueError naming the valid forms."""
        if name == "full":
            return cls()
        prefix, _, rest = name.partition(":")
        names = rest.split("+")
        valid = {m.value for m in Modality}
        if prefix not in ("mask", "only") or not rest or set(names) - valid:
            raise ValueError(f"unknown variant {name!r}: use full, mask:<m>[+<m>] or only:<m> "
                             f"with m in video, audio, text")
        chosen = frozenset(Modality(n) for n in names)
        return cls(chosen if prefix == "mask" else frozenset(Modality) - chosen)


FULL = Variant()
ALL_VARIANTS = (FULL, *(Variant.of(m) for m in Modality))


@dataclass(frozen=True)
class MaskedInput:
    """The inputs a prompt is rendered from after masking: media parts, subtitle, feature masks."""

    video: VideoPart | None
    audio: AudioPart | None
    subtitle: str | None
    zero_features: frozenset[Modality] = frozenset()


def effective_mode(modality: Modality, mode: MaskMode) -> MaskMode:
    """The mode actually applied to a masked `modality` (text has no features to zero)."""
    if modality is Modality.TEXT and mode is MaskMode.ZERO_FEATURES:
        return MaskMode.BLANK
    return mode


def applied_modes(variant: Variant, mode: MaskMode) -> dict[str, str]:
    """Masked modality → mode actually applied, for the results files."""
    return {m.value: effective_mode(m, mode).value for m in sorted(variant.masked, key=_ORDER.__getitem__)}


def apply_mask(sample: Sample, variant: Variant, mode: MaskMode) -> MaskedInput:
    """The sample's inputs with `variant.masked` removed by `mode`; other modalities untouched."""
    video = VideoPart(sample.video) if sample.video else None
    audio = AudioPart(sample.audio) if sample.audio else None
    subtitle = sample.subtitle
    zero: set[Modality] = set()
    for modality in variant.masked:
        how = effective_mode(modality, mode)
        if how is MaskMode.ZERO_FEATURES:
            zero.add(modality)
        elif modality is Modality.TEXT:
            subtitle = None if how is MaskMode.DROP else ""
        elif modality is Modality.VIDEO:
            video = None if how is MaskMode.DROP or video is None else VideoPart(video.path, blank=True)
        else:
            audio = None if how is MaskMode.DROP or audio is None else AudioPart(audio.path, blank=True)
    return MaskedInput(video=video, audio=audio, subtitle=subtitle, zero_features=frozenset(zero))


__all__ = ["ALL_VARIANTS", "FULL", "MaskMode", "MaskedInput", "Variant", "applied_modes", "apply_mask",
           "effective_mode"]
