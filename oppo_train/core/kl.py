"""Per-token KL estimators (Schulman's k1, k3) and the exact categorical KL from full log-distributions.

For the reference KL, p is the policy and q the reference; for the Omni-Perception Loss, p is the policy with full
input and q with a modality masked (KL(full ‖ masked), paper §4). Samples are drawn from p in both cases.
"""

from __future__ import annotations

import torch

ESTIMATORS = ("k1", "k3", "exact")
LOG_RATIO_CLAMP = 20.0  # keeps exp() finite for k3 on wildly different log-probs (as verl does)


def k1(logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    """log p(y) − log q(y) on the sampled token: unbiased for KL(p ‖ q), can be negative (the authors' default)."""
    return logp - logq


def k3(logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    """exp(log q − log p) − (log q − log p) − 1: unbiased for KL(p ‖ q), never negative, lower variance."""
    log_ratio = torch.clamp(logq - logp, -LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
    return torch.exp(log_ratio) - log_ratio - 1.0


def exact_kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """Σ_v p(v)(log p(v) − log q(v)) at each position, from (…, V) log-distributions."""
    return (log_p.exp() * (log_p - log_q)).sum(-1)


def token_kl(estimator: str, logp: torch.Tensor, logq: torch.Tensor, log_p: torch.Tensor | None = None,
             log_q: torch.Tensor | None = None) -> torch.Tensor:
    """Per-token KL(p ‖ q) with the chosen estimator; `exact` needs the full log-distributions `log_p`, `log_q`."""
    if estimator == "k1":
        return k1(logp, logq)
    if estimator == "k3":
        return k3(logp, logq)
    if estimator == "exact":
        if log_p is None or log_q is None:
            raise ValueError("the exact KL needs the full log-distributions of both policies")
        return exact_kl(log_p, log_q)
    raise ValueError(f"unknown KL estimator {estimator!r}; choose one of {ESTIMATORS}")
