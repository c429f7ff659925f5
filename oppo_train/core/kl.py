"""Per-token KL estimators and the exact categorical KL, for the reference KL and the perception term.

For the reference KL, p is the policy and q the reference; for the perception term, p is the policy with full input
and q with a modality masked (KL(full ‖ masked), OPPO §4, PAPO Eq. 2). Samples y are drawn from p; q's pass is
detached. What each estimator's gradient is, with q held fixed (derivations in docs/training.md):

- `exact`: Σ_v p(v)(log p(v) − log q(v)). Its gradient is that of KL(p ‖ q): it depends on q, and it is zero when
  q = p.
- `k1` (`k1_authors` for the perception term): log p(y) − log q(y). Its gradient is ∇ log p(y), whatever q is, and
  its expectation over y ~ p is 0. As a perception term it cannot depend on the masked input.
- `k3`: q(y)/p(y) − log(q(y)/p(y)) − 1 (verl's `low_var_kl`, clamped as there). Its gradient is (1 − q(y)/p(y)) ∇ log
  p(y). The expectation over y ~ p is −Σ_v q(v) ∇ log p(v), which is the gradient of the reverse KL(q ‖ p).
"""

from __future__ import annotations

import torch

SAMPLED = ("k1", "k1_authors", "k3")
LOG_RATIO_CLAMP = 20.0  # keeps exp() finite for k3 on wildly different log-probs (verl's low_var_kl)
K3_CLAMP = 10.0  # verl's low_var_kl clamps its value to [-10, 10]


def k1(logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    """log p(y) − log q(y) on the sampled token: unbiased for KL(p ‖ q), can be negative."""
    return logp - logq


def k3(logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    """exp(log q − log p) − (log q − log p) − 1: unbiased for KL(p ‖ q), never negative, lower variance."""
    log_ratio = torch.clamp(logq - logp, -LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
    return torch.clamp(torch.exp(log_ratio) - log_ratio - 1.0, max=K3_CLAMP)


def exact_kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """Σ_v p(v)(log p(v) − log q(v)) at each position, from (…, V) log-distributions."""
    return (log_p.exp() * (log_p - log_q)).sum(-1)


def token_kl(estimator: str, logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    """Per-token sampled estimate of KL(p ‖ q) from the sampled tokens' log-probs (`k1`, `k1_authors`, `k3`); the exact
    KL needs the distributions and is computed where they are (`exact_kl`, the policy's routed-position pass)."""
    if estimator in ("k1", "k1_authors"):
        return k1(logp, logq)
    if estimator == "k3":
        return k3(logp, logq)
    raise ValueError(f"unknown sampled KL estimator {estimator!r}; choose one of {SAMPLED} (or the exact KL)")
