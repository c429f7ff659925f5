"""Random feature masking of processor outputs (paper §4.2, the authors' `mask_visual_inputs`/`mask_audio_inputs`).

Every element of a modality's feature tensor is zeroed independently with probability ρ; grids, lengths, attention
masks and token ids are left as they are, so the masked input has exactly the full input's placeholder tokens.
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
    audio: `input_features`) have each element zeroed with probability `rho`; every other entry is the same object."""
    if not 0.0 <= rho <= 1.0:
        raise ValueError(f"the mask ratio rho must be in [0, 1], got {rho}")
    out = dict(inputs)
    for name in modalities:
        if name not in MASKABLE:
            raise ValueError(f"cannot mask modality {name!r}; maskable: {MASKABLE}")
        for key in FEATURE_KEYS[Modality(name)]:
            features = out.get(key)
            if isinstance(features, torch.Tensor):
                device = generator.device if generator is not None else features.device
                keep = torch.rand(features.shape, generator=generator, device=device) >= rho
                out[key] = features * keep.to(device=features.device, dtype=features.dtype)
    return out
