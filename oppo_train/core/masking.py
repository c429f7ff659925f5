"""Random masking of processor outputs for the perception term's masked copies.

Two styles; grids, lengths, attention masks and token ids stay as they are, so a masked input has exactly the full
input's placeholder tokens:

- `element` (the OPPO authors' `mask_visual_inputs` / `mask_audio_inputs`, oppo-paper.md §4.2): every element of a
  modality's feature tensor is zeroed independently with probability ρ.
- `patch` (PAPO, arXiv 2507.06448 §3.2 and Appendix G.1: 14-px patches blackened with probability ρ): every row of
  the Qwen vision features (one 14 × 14 patch, over `temporal_patch_size` frames) becomes the normalised value of a
  black patch with probability ρ; for audio, which PAPO does not mask, every mel frame becomes the clip's quietest
  feature value (Whisper features are floored, so this is silence) with probability ρ.

Audio frames after the longest clip (padding, which the audio encoder drops) are not drawn for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch

from mepbench.backends.adapters import FEATURE_KEYS
from mepbench.types import Modality

MASKABLE = tuple(m.value for m in FEATURE_KEYS)
STYLES = ("element", "patch")
VISION_KEYS = ("pixel_values_videos", "pixel_values")


def black_patches(processor: Any) -> dict[str, torch.Tensor]:
    """Per vision feature key, the row a black patch becomes after the processor's rescale and normalisation
    ((0 − mean_c) / std_c for each channel c, repeated over the patch's temporal × spatial pixels, channel-major as in
    Qwen2-VL's patch layout)."""
    out = {}
    for key, attr in zip(VISION_KEYS, ("video_processor", "image_processor")):
        proc = getattr(processor, attr, None)
        if proc is None or getattr(proc, "image_mean", None) is None:
            continue
        black = -np.asarray(proc.image_mean, np.float64) / np.asarray(proc.image_std, np.float64)
        pixels = int(getattr(proc, "temporal_patch_size", 1)) * int(proc.patch_size) ** 2
        out[key] = torch.tensor(np.repeat(black, pixels), dtype=torch.float32)
    return out


def _draw(shape: tuple[int, ...], rho: float, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """A bool tensor on `device`: True (keep) with probability 1 − ρ."""
    where = generator.device if generator is not None else device
    return (torch.rand(shape, generator=generator, device=where) >= rho).to(device)


def _mask_element(features: torch.Tensor, rho: float, generator: torch.Generator | None) -> torch.Tensor:
    return features * _draw(tuple(features.shape), rho, generator, features.device).to(features.dtype)


def _mask_rows(features: torch.Tensor, fill: torch.Tensor, rho: float, generator: torch.Generator | None
               ) -> torch.Tensor:
    if fill.numel() != features.shape[-1]:
        raise ValueError(f"a black patch has {fill.numel()} values but a feature row has {features.shape[-1]}")
    keep = _draw((features.shape[0], 1), rho, generator, features.device)
    return torch.where(keep, features, fill.to(features.device, features.dtype))


def _mask_frames(features: torch.Tensor, lengths: torch.Tensor | None, rho: float,
                 generator: torch.Generator | None) -> torch.Tensor:
    """(B, mel, frames): each frame of each clip set to that clip's floor value with probability ρ."""
    batch, _, frames = features.shape
    valid = torch.ones(batch, frames, dtype=torch.bool, device=features.device) if lengths is None else (
        torch.arange(frames, device=features.device)[None] < lengths[:, None].to(features.device))
    floor = features.masked_fill(~valid[:, None], float("inf")).amin(dim=(1, 2), keepdim=True)
    floor = torch.where(torch.isfinite(floor), floor, torch.zeros_like(floor))
    keep = _draw((batch, 1, frames), rho, generator, features.device)
    return torch.where(keep, features, floor.expand_as(features))


def mask_features(inputs: Mapping[str, Any], modalities: Iterable[str], rho: float,
                  generator: torch.Generator | None = None, *, style: str = "element",
                  fill: Mapping[str, torch.Tensor] | None = None) -> dict[str, Any]:
    """A shallow copy of `inputs` whose feature tensors of `modalities` (video: `pixel_values_videos`/`pixel_values`;
    audio: `input_features`, up to the last frame of `feature_attention_mask`) are masked in `style` with ratio
    `rho`; `fill` gives the black patch rows of the `patch` style (`black_patches`). Every other entry is the same
    object."""
    if not 0.0 <= rho <= 1.0:
        raise ValueError(f"the mask ratio rho must be in [0, 1], got {rho}")
    if style not in STYLES:
        raise ValueError(f"unknown mask style {style!r}; choose one of {STYLES}")
    out = dict(inputs)
    for name in modalities:
        if name not in MASKABLE:
            raise ValueError(f"cannot mask modality {name!r}; maskable: {MASKABLE}")
        for key in FEATURE_KEYS[Modality(name)]:
            features = out.get(key)
            if not isinstance(features, torch.Tensor):
                continue
            frames = used_frames(inputs) if key == "input_features" else None
            used = features if frames is None else features[..., :frames]
            if style == "element":
                masked = _mask_element(used, rho, generator)
            elif key in VISION_KEYS:
                if fill is None or key not in fill:
                    raise ValueError(f"patch masking of {key} needs its black patch row (black_patches(processor))")
                masked = _mask_rows(used, fill[key], rho, generator)
            else:
                lengths = inputs.get("feature_attention_mask")
                masked = _mask_frames(used, None if lengths is None else lengths.sum(-1), rho, generator)
            out[key] = masked if frames is None else torch.cat([masked, features[..., frames:]], dim=-1)
    return out


def feature_keys(modalities: Iterable[str]) -> tuple[str, ...]:
    """The feature keys that masking `modalities` changes."""
    return tuple(key for name in modalities for key in FEATURE_KEYS[Modality(name)])


def used_frames(inputs: Mapping[str, Any]) -> int | None:
    """Audio frames up to the last one any clip uses (`feature_attention_mask`); None (all) without the mask."""
    frames = inputs.get("feature_attention_mask")
    if not isinstance(frames, torch.Tensor) or not frames.any():
        return None
    return int(frames.any(0).nonzero().max()) + 1
