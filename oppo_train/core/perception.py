"""The Omni-Perception Loss (paper §4) and its ablations PAPO and PAPO-dual (§4.2 V0/V1), on per-token KLs.

J = −β · Σ_m mean_{t ∈ T_m} KL_m(t) + η · H_full, with KL_m(t) the exact KL(π(·|X) ‖ π(·|X̃^m)) at t or an estimate
of it, and H = −mean log-prob of the sampled tokens. Minimising J maximises the full-vs-masked divergence on the
selected tokens. The masked distributions come from a no-grad pass: only the full-input branch carries gradient. The
authors' code (and PAPO's Double Entropy Loss) adds η · Σ_m H_m, the masked copies' entropies: constants without
gradient, left out so that a masked pass needs only the tokens of T_m.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from oppo_train.core.policy_loss import masked_mean

JOINT = "video+audio"  # PAPO masks both modalities in one copy (V0)


def copy_name(modalities: tuple[str, ...]) -> str:
    """The key of a masked copy: `video`, `audio` or `video+audio`."""
    return "+".join(modalities)


@dataclass
class PerceptionLoss:
    """The loss (with gradient through the full branch only) and detached parts for logging."""

    loss: torch.Tensor
    kl: dict[str, float] = field(default_factory=dict)
    tokens: dict[str, float] = field(default_factory=dict)
    entropy_full: float = 0.0


def perception_loss(logp_full: torch.Tensor, kl: Mapping[str, torch.Tensor], token_masks: Mapping[str, torch.Tensor],
                    completion_mask: torch.Tensor, *, beta: float, entropy_coef: float = 0.0,
                    kl_clip: float | None = None, token_counts: Mapping[str, float] | None = None,
                    completion_tokens: float | None = None) -> PerceptionLoss:
    """−β Σ_m mean_{T_m} KL_m + η H_full over the (B, T) tensors of one batch.

    `kl[m]` is the per-token KL of copy m, `token_masks[m]` its token set T_m (routed tokens for OPPO, every completion
    token for PAPO); `kl_clip` caps each token's KL (a guard against KL hacking). `token_counts` / `completion_tokens`
    override the mean denominators so micro-batches add up to the whole step.
    """
    terms, kl_log, tokens = [], {}, {}
    for name, per_token in kl.items():
        if kl_clip is not None:
            per_token = torch.clamp(per_token, max=kl_clip)
        mask = token_masks[name]
        count = None if token_counts is None else token_counts[name]
        term = masked_mean(per_token, mask, count)
        terms.append(term)
        kl_log[name], tokens[name] = float(term.detach()), float(mask.sum())
    h_full = masked_mean(-logp_full, completion_mask, completion_tokens)
    divergence = torch.stack(terms).sum() if terms else logp_full.sum() * 0.0
    loss = -beta * divergence + entropy_coef * h_full
    return PerceptionLoss(loss, kl_log, tokens, float(h_full.detach()))
