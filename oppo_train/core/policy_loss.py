"""The clipped GRPO surrogate and its token aggregation modes (`grpo`, `dapo`, `dr_grpo`), as in TRL's definitions.

Normalisers can be passed explicitly so that micro-batches and processes add up to the loss of the whole step.
"""

from __future__ import annotations

import torch

LOSS_TYPES = ("grpo", "dapo", "dr_grpo")


def clipped_surrogate(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, eps_low: float = 0.2,
                      eps_high: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token loss −min(ρA, clip(ρ, 1−ε_low, 1+ε_high)·A) with ρ = exp(logp − old_logp), and a bool tensor of the
    tokens where the clip is active (ρ < 1−ε with A < 0, or ρ > 1+ε with A > 0). `advantages` is per sequence."""
    high = eps_low if eps_high is None else eps_high
    ratio = torch.exp(logp - old_logp)
    adv = advantages.unsqueeze(-1)
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1.0 - eps_low, 1.0 + high) * adv
    active = ((ratio < 1.0 - eps_low) & (adv < 0)) | ((ratio > 1.0 + high) & (adv > 0))
    return -torch.minimum(unclipped, clipped), active


def aggregate(per_token: torch.Tensor, mask: torch.Tensor, loss_type: str, *, num_sequences: float | None = None,
              num_tokens: float | None = None, max_length: int | None = None) -> torch.Tensor:
    """Reduce a (B, T) per-token loss over the `mask`ed tokens.

    grpo: mean over each sequence's tokens, then sum / `num_sequences` (default B); dapo: token sum / `num_tokens`
    (default the mask's count); dr_grpo: token sum / (`num_sequences` · `max_length`, default B · T).
    """
    mask = mask.to(per_token.dtype)
    if loss_type == "grpo":
        per_seq = (per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)
        return per_seq.sum() / (per_token.shape[0] if num_sequences is None else num_sequences)
    if loss_type == "dapo":
        return (per_token * mask).sum() / max(float(mask.sum()) if num_tokens is None else num_tokens, 1.0)
    if loss_type == "dr_grpo":
        n = per_token.shape[0] if num_sequences is None else num_sequences
        return (per_token * mask).sum() / (n * (per_token.shape[1] if max_length is None else max_length))
    raise ValueError(f"unknown loss type {loss_type!r}; choose one of {LOSS_TYPES}")


def masked_mean(values: torch.Tensor, mask: torch.Tensor, count: float | None = None) -> torch.Tensor:
    """Sum of `values` over `mask` divided by `count` (default the mask's count); 0 when nothing is selected."""
    total = (values * mask.to(values.dtype)).sum()
    n = float(mask.sum()) if count is None else count
    return total / n if n > 0 else total * 0.0
