"""Random feature masking of processor outputs (paper §4.2, the authors' `mask_visual_inputs`/`mask_audio_inputs`).

Every element of a modality's feature tensor is zeroed independently with probability ρ; grids, lengths, attention
masks and token ids are left as they are, so the masked input has exactly the full input's placeholder tokens. Audio
frames after the longest clip (padding, which the audio encoder drops) are not drawn for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

from mepbench.backends.adapters.base import FEATURE_KEYS
from mepbench.types import Modality

MASKABLE = tuple(m.value for m in FEATURE_KEYS)


def mask_features(inputs: Mapping[str, Any], modalities: Iterable[str], rho: float,
                  generator: torch.Generator | None = None) -> dict[str, Any]:
    """A shallow copy of `inputs` whose feature tensors of `modalities` (video: `pixel_values_videos`/`pixel_values`;
    audio: `input_features`, up to the last frame of `feature_attention_mask`) have each element zeroed with
    probability `rho`; every other entry is the same object."""
    if not 0.0 <= rho <= 1.0:
        raise ValueError(f"the mask ratio rho must be in [0, 1], got {rho}")
    out = dict(inputs)
    for name in modalities:
        if name not in MASKABLE:
            raise ValueError(f"cannot mask modality {name!r}; maskable: {MASKABLE}")
        for key in FEATURE_KEYS[Modality(name)]:
            features = out.get(key)
            if isinstance(features, torch.Tensor):
                frames = used_frames(inputs) if key == "input_features" else None
                used = features if frames is None else features[..., :frames]
                device = generator.device if generator is not None else features.device
                keep = torch.rand(used.shape, generator=generator, device=device) >= rho
                masked = used * keep.to(device=features.device, dtype=features.dtype)
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
