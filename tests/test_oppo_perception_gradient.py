"""The perception term on tiny-omni: with the default exact KL its gradient uses the masked input, vanishes when the
mask removes nothing (ρ = 0), equals a finite-difference derivative of the exact KL and raises the divergence; an RL
step at ρ = 0.7 and at ρ = 0 moves the weights differently. The authors' k1 (`k1_authors`) is the falsification
control: its gradient, and so the whole step, is the same at any ρ."""

from __future__ import annotations

import pytest
import torch

from oppo_train.rl import Rollout
from test_oppo_train import one_thread  # noqa: F401  (the autouse one-intra-op-thread fixture)
from test_oppo_train import ContainsEmbedder, loss_and_grads, teacher_rollout, trainer, weights


def setup(tmp_path, cache, variant: str, *extra: str):
    """A trainer of `variant` with only the perception KL in the loss (advantages zeroed, no reference KL, no
    entropy term), and a scored, precomputed rollout of reference reasonings (which name the clips' cues)."""
    t = trainer(tmp_path, cache, f"variant={variant}", "ref_kl_coef=0.0", "perception.entropy_coef=0.0", *extra)
    if t.scorer is not None:
        t.scorer.embedder = ContainsEmbedder()
    r = teacher_rollout(t)
    t.score([r])
    r.advantages = torch.zeros_like(r.advantages)
    t.precompute(r, 0)
    return t, r


def term_grads(tmp_path, cache, variant: str, rho: float, *extra: str) -> tuple[float, list[torch.Tensor]]:
    t, r = setup(tmp_path / f"{variant}-{rho}", cache, variant, f"perception.rho={rho}", *extra)
    loss, _, grads = loss_and_grads(t, r)
    return loss, grads


def largest(grads: list[torch.Tensor]) -> float:
    return max(float(g.abs().max()) for g in grads)


@pytest.mark.parametrize("variant", ["oppo", "papo_dual"])
def test_default_gradient_depends_on_the_mask_and_vanishes_at_rho_zero(tmp_path, session_cache, variant):
    loss_0, at_0 = term_grads(tmp_path, session_cache, variant, 0.0)
    loss_7, at_7 = term_grads(tmp_path, session_cache, variant, 0.7)
    assert loss_7 < 0.0, "the term is −β·KL: negative when the copies differ"
    assert abs(loss_0) < 1e-6 and largest(at_0) < 1e-4 * largest(at_7)  # masked = full: no divergence, no gradient
    assert any(not torch.allclose(a, b, atol=1e-7) for a, b in zip(at_0, at_7))


def test_the_authors_k1_gradient_ignores_the_masked_pass(tmp_path, session_cache):
    _, at_0 = term_grads(tmp_path, session_cache, "oppo", 0.0, "perception.estimator=k1_authors")
    _, at_7 = term_grads(tmp_path, session_cache, "oppo", 0.7, "perception.estimator=k1_authors")
    assert largest(at_7) > 0 and all(torch.equal(a, b) for a, b in zip(at_0, at_7))


def perturbed(t, direction: list[torch.Tensor], eps: float):
    """The trainable parameters moved by eps·direction (in place), restored on exit."""
    class Move:
        def __enter__(self):
            with torch.no_grad():
                for p, d in zip(params(t), direction):
                    p.add_(eps * d)

        def __exit__(self, *exc):
            with torch.no_grad():
                for p, d in zip(params(t), direction):
                    p.sub_(eps * d)
    return Move()


def params(t) -> list[torch.Tensor]:
    return [p for p in t.policy.parameters() if p.requires_grad]


def term(t, r: Rollout) -> torch.Tensor:
    loss, _ = t.micro_loss(r, {"rows": float(r.completion_mask.shape[0]), "tokens": float(r.completion_mask.sum()),
                               **{n: float(m.sum()) for n, m in r.token_masks.items()}}, beta_ref=0.0)
    return loss


def central_difference(t, r: Rollout, direction: list[torch.Tensor], eps: float) -> float:
    with torch.no_grad():
        with perturbed(t, direction, eps):
            plus = float(term(t, r))
        with perturbed(t, direction, -eps):
            minus = float(term(t, r))
    return (plus - minus) / (2 * eps)


def test_gradient_equals_a_finite_difference_of_the_exact_kl(tmp_path, session_cache):
    """In float64: the autograd directional derivative of −β Σ_m mean_{T_m} KL(π_θ(·|full) ‖ π_θ0(·|masked)) (the
    masked distribution held at the rollout's weights, as the no-grad pass holds it) equals the central difference.
    Along the LM head every operation is float64, so they agree to 1e-7; through the whole network the thinker's
    RMSNorm and attention softmax compute in float32 even in a float64 model, so the difference is only good to
    ~1e-4 there (checked at 1e-3)."""
    t, r = setup(tmp_path, session_cache, "oppo", "model.dtype=float64", "perception.beta=1.0")
    assert all(d.dtype == torch.float64 for d in r.masked_dist.values())
    grads = torch.autograd.grad(term(t, r), params(t))
    gen = torch.Generator().manual_seed(0)
    everywhere = [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in params(t)]
    head = [d if p is t.unwrapped.model.lm_head.weight else torch.zeros_like(d) for p, d in zip(params(t), everywhere)]
    for direction, eps, rel in ((head, 1e-5, 1e-7), (everywhere, 1e-4, 1e-3)):
        analytic = sum(float((g * d).sum()) for g, d in zip(grads, direction))
        assert analytic != 0.0 and central_difference(t, r, direction, eps) == pytest.approx(analytic, rel=rel)


def test_a_descent_step_raises_the_divergence(tmp_path, session_cache):
    t, r = setup(tmp_path, session_cache, "oppo", "perception.beta=1.0")
    before = float(term(t, r).detach())  # = −(KL_V + KL_A)
    grads = torch.autograd.grad(term(t, r), params(t))
    with torch.no_grad():
        for p, g in zip(params(t), grads):
            p.sub_(0.05 * g)
    assert float(term(t, r).detach()) < before < 0.0  # the means of KL(full ‖ masked) on T_V and T_A went up


def rl_step(tmp_path, cache, variant: str, *extra: str) -> dict[str, torch.Tensor]:
    """One optimiser step of `variant` (its shipped perception defaults) on a reference-reasoning rollout."""
    t = trainer(tmp_path, cache, f"variant={variant}", *extra)
    if t.scorer is not None:
        t.scorer.embedder = ContainsEmbedder()
    r = teacher_rollout(t)
    t.score([r])
    t.precompute(r, 0)
    t.update([r])
    return weights(t)


@pytest.mark.parametrize("variant", ["papo_dual", "oppo"])
def test_an_rl_step_at_rho_0_7_and_at_rho_0_gives_different_weights(tmp_path, session_cache, variant):
    at_0 = rl_step(tmp_path / "a", session_cache, variant, "perception.rho=0.0")
    at_7 = rl_step(tmp_path / "b", session_cache, variant, "perception.rho=0.7")
    assert max(float((at_0[k] - at_7[k]).abs().max()) for k in at_0) > 0.0


def test_with_k1_authors_the_rl_step_is_the_same_at_any_rho(tmp_path, session_cache):
    at_0 = rl_step(tmp_path / "a", session_cache, "oppo", "perception.rho=0.0", "perception.estimator=k1_authors")
    at_7 = rl_step(tmp_path / "b", session_cache, "oppo", "perception.rho=0.7", "perception.estimator=k1_authors")
    assert all(torch.equal(at_0[k], at_7[k]) for k in at_0)  # bit-identical: the audit's finding, kept as a control


def test_shuffled_routing_control_swaps_the_token_sets(tmp_path, session_cache):
    _, routed = setup(tmp_path / "a", session_cache, "oppo")
    _, swapped = setup(tmp_path / "b", session_cache, "oppo_shuffled")
    assert routed.token_masks["video"].any() and routed.token_masks["audio"].any()
    assert torch.equal(swapped.token_masks["video"], routed.token_masks["audio"])
    assert torch.equal(swapped.token_masks["audio"], routed.token_masks["video"])
