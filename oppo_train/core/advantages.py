"""Group-relative advantages of GRPO (paper §5: the authors' code uses r − mean_group(r), no std scaling)."""

from __future__ import annotations

import torch

SCALES = ("group", "batch", "none")


def group_advantages(rewards: torch.Tensor, group_size: int, scale: str = "none",
                     eps: float = 1e-4) -> torch.Tensor:
    """A_i = r_i − mean of its group of `group_size` consecutive rewards, divided by the group's (`group`) or the
    whole batch's (`batch`) unbiased std + eps; `none` (Dr. GRPO, the authors' setting) leaves it unscaled."""
    if scale not in SCALES:
        raise ValueError(f"unknown advantage scaling {scale!r}; choose one of {SCALES}")
    if group_size < 2 or rewards.ndim != 1 or rewards.numel() % group_size:
        raise ValueError(f"need a 1-D reward vector made of groups of size >= 2, got shape {tuple(rewards.shape)} "
                         f"and group size {group_size}")
    grouped = rewards.view(-1, group_size)
    centred = (grouped - grouped.mean(dim=1, keepdim=True)).reshape(-1)
    if scale == "group":
        return centred / (grouped.std(dim=1, keepdim=True).expand_as(grouped).reshape(-1) + eps)
    if scale == "batch":
        return centred / (rewards.std() + eps)
    return centred
