"""oppo_train.core against hand-computed values: advantages, aggregation, KL estimators, masking, perception loss."""

from __future__ import annotations

import math

import pytest
import torch

from oppo_train.core import (
    aggregate,
    black_patches,
    clipped_surrogate,
    exact_kl,
    feature_keys,
    group_advantages,
    k1,
    k3,
    mask_features,
    perception_loss,
    token_kl,
)


def close(a, b, tol=1e-6):
    return torch.allclose(torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64),
                          atol=tol, rtol=0)


# -- advantages ------------------------------------------------------------------------------------------------

def test_advantages_unscaled_are_group_centred():
    r = torch.tensor([1.0, 0.0, 0.0, 0.0, 2.0, 2.0, 4.0, 0.0])
    a = group_advantages(r, 4, "none")
    assert close(a, [0.75, -0.25, -0.25, -0.25, 0.0, 0.0, 2.0, -2.0])


def test_advantages_group_std_scaling():
    # group 1: mean .25, unbiased std sqrt((.5625 + 3*.0625)/3) = .5; group 2: mean 2, std sqrt(8/3)
    r = torch.tensor([1.0, 0.0, 0.0, 0.0, 2.0, 2.0, 4.0, 0.0])
    a = group_advantages(r, 4, "group", eps=0.0)
    s2 = math.sqrt(8 / 3)
    assert close(a, [1.5, -0.5, -0.5, -0.5, 0.0, 0.0, 2 / s2, -2 / s2])
    eps = group_advantages(r, 4, "group", eps=0.5)
    assert close(eps[:4], [0.75, -0.25, -0.25, -0.25])


def test_advantages_batch_std_and_constant_group():
    r = torch.tensor([1.0, 3.0, 5.0, 5.0])
    batch_std = float(r.std())  # unbiased: sqrt(((−2.5)² + (−.5)² + 1.5² + 1.5²)/3) = sqrt(11/3)
    assert math.isclose(batch_std, math.sqrt(11 / 3), rel_tol=1e-6)
    assert close(group_advantages(r, 2, "batch", eps=0.0), [-1 / batch_std, 1 / batch_std, 0.0, 0.0])
    assert close(group_advantages(r, 2, "group"), [-1 / (math.sqrt(2) + 1e-4), 1 / (math.sqrt(2) + 1e-4), 0, 0],
                 tol=1e-5)


@pytest.mark.parametrize("shape,g", [((6,), 4), ((4,), 1), ((2, 2), 2)])
def test_advantages_reject_bad_groups(shape, g):
    with pytest.raises(ValueError):
        group_advantages(torch.zeros(shape), g)


# -- clipped surrogate and aggregation ----------------------------------------------------------------------------

def test_surrogate_on_policy_is_minus_advantage():
    logp = torch.tensor([[-1.0, -2.0]])
    loss, clipped = clipped_surrogate(logp, logp, torch.tensor([0.5]))
    assert close(loss, [[-0.5, -0.5]]) and not clipped.any()


def test_surrogate_clips_both_sides():
    old = torch.zeros(1, 4)
    logp = torch.log(torch.tensor([[1.5, 0.5, 1.1, 1.5]]))  # ratios 1.5, 0.5, 1.1, 1.5
    adv = torch.tensor([1.0])
    loss, clipped = clipped_surrogate(logp, old, adv, eps_low=0.2)
    # A>0: min(ρA, clip(ρ)A): 1.2, 0.5, 1.1, 1.2
    assert close(loss, [[-1.2, -0.5, -1.1, -1.2]])
    assert clipped.tolist() == [[True, False, False, True]]
    loss, clipped = clipped_surrogate(logp, old, -adv, eps_low=0.2)
    # A<0: min(−ρ, −clip(ρ)) = −max(ρ, clip(ρ)): 1.5, 0.8, 1.1, 1.5 → loss = those
    assert close(loss, [[1.5, 0.8, 1.1, 1.5]])
    assert clipped.tolist() == [[False, True, False, False]]
    loss, _ = clipped_surrogate(logp, old, adv, eps_low=0.2, eps_high=0.28)  # DAPO clip-higher
    assert close(loss, [[-1.28, -0.5, -1.1, -1.28]])


def test_aggregation_modes_by_hand():
    per_token = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    # grpo: (mean(1,2,3)=2 + mean(4)=4) / 2 = 3 ; dapo: (6+4)/4 = 2.5 ; dr_grpo: 10 / (2*3) = 5/3
    assert close(aggregate(per_token, mask, "grpo"), 3.0)
    assert close(aggregate(per_token, mask, "dapo"), 2.5)
    assert close(aggregate(per_token, mask, "dr_grpo"), 10 / 6)
    assert close(aggregate(per_token, mask, "dr_grpo", max_length=5), 1.0)
    # micro-batches with global normalisers add up to the whole batch
    parts = [aggregate(per_token[i:i + 1], mask[i:i + 1], "dapo", num_tokens=4) for i in range(2)]
    assert close(sum(parts), 2.5)
    parts = [aggregate(per_token[i:i + 1], mask[i:i + 1], "grpo", num_sequences=2) for i in range(2)]
    assert close(sum(parts), 3.0)
    with pytest.raises(ValueError):
        aggregate(per_token, mask, "bnpo")  # type: ignore[arg-type]


# -- KL estimators ------------------------------------------------------------------------------------------------

def test_k1_k3_by_hand():
    logp, logq = torch.tensor([math.log(0.5), math.log(0.2)]), torch.tensor([math.log(0.25), math.log(0.4)])
    assert close(k1(logp, logq), [math.log(2), math.log(0.5)])
    # k3 = q/p − log(q/p) − 1: (0.5 − log .5 − 1, 2 − log 2 − 1)
    assert close(k3(logp, logq), [0.5 + math.log(2) - 1, 1 - math.log(2)])
    assert (k3(logp, logq) >= 0).all() and close(k3(logp, logp), [0.0, 0.0])


def test_exact_kl_by_hand_and_estimators_are_unbiased():
    p, q = torch.tensor([0.5, 0.25, 0.25]), torch.tensor([0.25, 0.25, 0.5])
    want = 0.5 * math.log(2) + 0.25 * math.log(0.5)  # = 0.25 log 2
    assert close(exact_kl(p.log(), q.log()), want)
    # E_p[k1] and E_p[k3] equal the exact KL (weights p over the vocabulary as "samples")
    assert close((p * k1(p.log(), q.log())).sum(), want)
    assert close((p * k3(p.log(), q.log())).sum(), want)
    assert close(token_kl("k1_authors", p.log(), q.log()), k1(p.log(), q.log()))
    with pytest.raises(ValueError, match="exact KL"):
        token_kl("exact", p.log(), q.log())  # the exact KL needs the distributions: computed by the policy
    with pytest.raises(ValueError):
        token_kl("k2", p.log(), q.log())  # type: ignore[arg-type]


def test_k3_value_is_clamped_as_verl_low_var_kl():
    logp, logq = torch.tensor([-20.0]), torch.tensor([-1.0])  # q/p = e^19: the raw k3 would be ~1.8e8
    assert close(k3(logp, logq), [10.0])


def test_estimator_gradients_with_the_masked_distribution_held_fixed():
    """d/dθ of each estimator at logits θ of p, q fixed: k1's is ∇log p(y) whatever q is (zero mean over y ~ p); k3's
    expectation is the reverse KL's gradient; only the exact KL's is KL(p ‖ q)'s, and it vanishes when q = p."""
    theta = torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64, requires_grad=True)
    for q in (torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64), torch.softmax(theta.detach(), 0)):
        log_p, log_q = torch.log_softmax(theta, 0), q.log()
        p = log_p.exp().detach()
        grad = lambda f: torch.autograd.grad(f, theta, retain_graph=True)[0]  # noqa: E731
        g_k1 = sum(p[y] * grad(k1(log_p[y], log_q[y])) for y in range(3))
        g_k3 = sum(p[y] * grad(k3(log_p[y], log_q[y])) for y in range(3))
        g_exact = grad(exact_kl(log_p, log_q))
        g_reverse = grad((q * (log_q - log_p)).sum())  # KL(q ‖ p)
        g_forward = grad((log_p.exp() * (log_p - log_q)).sum())
        assert torch.allclose(g_k1, torch.zeros(3, dtype=torch.float64), atol=1e-12)  # blind to q
        assert torch.allclose(g_k3, g_reverse) and torch.allclose(g_exact, g_forward)
    assert torch.allclose(g_exact, torch.zeros(3, dtype=torch.float64), atol=1e-12)  # q = p (the last case)


# -- feature masking ------------------------------------------------------------------------------------------------

def _inputs():
    return {"input_ids": torch.arange(12).view(1, 12), "attention_mask": torch.ones(1, 12, dtype=torch.long),
            "pixel_values_videos": torch.ones(64, 100), "video_grid_thw": torch.tensor([[2, 4, 8]]),
            "video_second_per_grid": torch.tensor([1.0]), "input_features": torch.full((1, 8, 300), 2.0),
            "feature_attention_mask": torch.ones(1, 300, dtype=torch.int32)}


@pytest.mark.parametrize("rho", [0.0, 0.3, 0.7, 1.0])
def test_masking_ratio_and_untouched_metadata(rho):
    inputs = _inputs()
    g = torch.Generator().manual_seed(0)
    out = mask_features(inputs, ["video"], rho, g)
    zero_frac = float((out["pixel_values_videos"] == 0).float().mean())
    assert abs(zero_frac - rho) < 0.02  # 6,400 Bernoulli(ρ) draws: 3σ < 0.018
    kept = out["pixel_values_videos"][out["pixel_values_videos"] != 0]
    assert (kept == 1.0).all()  # zeroed, not rescaled or noised
    for key in ("input_ids", "attention_mask", "video_grid_thw", "video_second_per_grid", "input_features",
                "feature_attention_mask"):
        assert out[key] is inputs[key]  # metadata and the other modality untouched (same objects)
    assert (inputs["pixel_values_videos"] == 1).all()  # the input is not modified in place


def test_masking_audio_both_and_determinism():
    inputs = _inputs()
    a = mask_features(inputs, ["audio"], 0.7, torch.Generator().manual_seed(1))
    b = mask_features(inputs, ["audio"], 0.7, torch.Generator().manual_seed(1))
    assert torch.equal(a["input_features"], b["input_features"])
    assert a["pixel_values_videos"] is inputs["pixel_values_videos"]
    assert a["feature_attention_mask"] is inputs["feature_attention_mask"]
    both = mask_features(inputs, ["video", "audio"], 1.0)
    assert not both["pixel_values_videos"].any() and not both["input_features"].any()
    with pytest.raises(ValueError):
        mask_features(inputs, ["text"], 0.5)
    with pytest.raises(ValueError):
        mask_features(inputs, ["video"], 1.5)


def test_audio_masking_draws_only_up_to_the_last_used_frame():
    inputs = {**_inputs(), "feature_attention_mask": torch.zeros(2, 300, dtype=torch.int32),
              "input_features": torch.full((2, 8, 300), 2.0)}
    inputs["feature_attention_mask"][0, :120] = 1
    inputs["feature_attention_mask"][1, :80] = 1
    out = mask_features(inputs, ["audio"], 0.7, torch.Generator().manual_seed(0))["input_features"]
    assert out.shape == (2, 8, 300)
    assert abs(float((out[..., :120] == 0).float().mean()) - 0.7) < 0.03  # 1,920 draws over the frames in use
    assert (out[..., 120:] == 2.0).all()  # padding after the longest clip (dropped by the encoder) is not drawn for
    assert feature_keys(["video", "audio"]) == ("pixel_values_videos", "pixel_values", "input_features")


def _vision_processor():
    from types import SimpleNamespace

    video = SimpleNamespace(image_mean=[0.5, 0.4, 0.3], image_std=[0.25, 0.2, 0.1], patch_size=2,
                            temporal_patch_size=2)
    return SimpleNamespace(video_processor=video)


def test_black_patch_rows_follow_the_channel_major_patch_layout():
    black = black_patches(_vision_processor())["pixel_values_videos"]
    # channel c's 2 x 2 x 2 pixels, each (0 − mean_c) / std_c
    assert black.tolist() == pytest.approx([-2.0] * 8 + [-2.0] * 8 + [-3.0] * 8)
    assert black_patches(object()) == {}


@pytest.mark.parametrize("rho", [0.0, 0.6, 1.0])
def test_patch_masking_blackens_whole_patches(rho):
    inputs = {**_inputs(), "pixel_values_videos": torch.randn(2000, 24)}
    fill = black_patches(_vision_processor())
    out = mask_features(inputs, ["video"], rho, torch.Generator().manual_seed(0), style="patch", fill=fill)
    rows = out["pixel_values_videos"]
    black = (rows == fill["pixel_values_videos"]).all(1)
    kept = (rows == inputs["pixel_values_videos"]).all(1)
    assert bool((black | kept).all())  # each patch either untouched or wholly black
    assert abs(float(black.float().mean()) - rho) < 0.035  # 2,000 Bernoulli(ρ) patches: 3σ < 0.033
    assert out["input_features"] is inputs["input_features"]
    with pytest.raises(ValueError, match="black patch row"):
        mask_features(inputs, ["video"], 0.5, style="patch")


def test_patch_masking_of_audio_silences_whole_frames_of_each_clip():
    features = torch.randn(2, 8, 300)
    lengths = torch.zeros(2, 300, dtype=torch.int32)
    lengths[0, :200], lengths[1, :100] = 1, 1
    inputs = {"input_features": features, "feature_attention_mask": lengths}
    out = mask_features(inputs, ["audio"], 0.5, torch.Generator().manual_seed(3), style="patch")["input_features"]
    for clip, n in ((0, 200), (1, 100)):
        floor = features[clip, :, :n].min()
        silenced = (out[clip, :, :200] == floor).all(0)
        kept = (out[clip, :, :200] == features[clip, :, :200]).all(0)
        assert bool((silenced | kept).all()) and 0.35 < float(silenced.float().mean()) < 0.65
    assert torch.equal(out[..., 200:], features[..., 200:])  # after the longest clip: not drawn for
    with pytest.raises(ValueError, match="unknown mask style"):
        mask_features(inputs, ["audio"], 0.5, style="pixels")


# -- the Omni-Perception Loss ---------------------------------------------------------------------------------------

def _perception_case():
    logp = torch.tensor([[-1.0, -2.0, -0.5, -1.5]], requires_grad=True)
    masked = {"video": torch.tensor([[-1.5, -2.0, -2.5, -1.0]]), "audio": torch.tensor([[-1.0, -3.0, -0.5, -0.5]])}
    comp = torch.tensor([[1, 1, 1, 1]])
    routed = {"video": torch.tensor([[True, False, True, False]]), "audio": torch.tensor([[False, True, False, True]])}
    return logp, masked, comp, routed


def test_perception_loss_value_by_hand_k1():
    logp, masked, comp, routed = _perception_case()
    kl = {m: k1(logp, masked[m]) for m in masked}
    # KL_V on tokens 0,2: (0.5 + 2.0)/2 = 1.25 ; KL_A on tokens 1,3: (1.0 + -1.0)/2 = 0
    # H_full = 5/4 = 1.25 → J = −0.1·1.25 + 0.01·1.25 (the masked copies' entropies are constants, left out)
    out = perception_loss(logp, kl, routed, comp, beta=0.1, entropy_coef=0.01)
    assert close(out.loss, -0.125 + 0.0125)
    assert out.kl == pytest.approx({"video": 1.25, "audio": 0.0})
    assert out.tokens == {"video": 2.0, "audio": 2.0}
    assert out.entropy_full == pytest.approx(1.25)


def test_perception_term_sign_maximises_divergence():
    logp, masked, comp, routed = _perception_case()
    kl = {m: k1(logp, masked[m]) for m in masked}
    perception_loss(logp, kl, routed, comp, beta=0.1).loss.backward()
    # d(−β mean_{T_m}(logp − masked))/d logp_t = −β/|T_m| on routed tokens: descending raises log p(y|full)
    assert close(logp.grad, [[-0.05, -0.05, -0.05, -0.05]])
    with torch.no_grad():
        stepped = logp - 1.0 * logp.grad
    after = perception_loss(stepped, {m: k1(stepped, masked[m]) for m in masked}, routed, comp, beta=0.1)
    assert sum(after.kl.values()) > 1.25  # a gradient step increases the full-vs-masked divergence


def test_perception_only_routed_tokens_and_clip_and_empty_sets():
    logp, masked, comp, routed = _perception_case()
    only_video = {"video": routed["video"], "audio": torch.zeros_like(routed["audio"])}
    kl = {m: k1(logp, masked[m]) for m in masked}
    out = perception_loss(logp, kl, only_video, comp, beta=1.0)
    out.loss.backward()
    assert close(logp.grad, [[-0.5, 0.0, -0.5, 0.0]])  # unrouted tokens get no KL gradient
    assert out.kl["audio"] == 0.0 and out.tokens["audio"] == 0.0
    clipped = perception_loss(logp, kl, routed, comp, beta=1.0, kl_clip=0.2)
    assert clipped.kl["video"] == pytest.approx(0.2)  # tokens 0, 2 capped at 0.2 each


def test_perception_k3_and_papo_all_tokens():
    logp, masked, comp, _ = _perception_case()
    both = {"video+audio": masked["video"]}
    kl = {"video+audio": k3(logp, both["video+audio"])}
    out = perception_loss(logp, kl, {"video+audio": comp.bool()}, comp, beta=1.0)
    want = float(k3(logp.detach(), masked["video"]).mean())
    assert out.kl["video+audio"] == pytest.approx(want) and out.tokens["video+audio"] == 4.0


def test_completion_mask_stops_after_the_first_end_of_turn():
    from oppo_train.policy import completion_mask

    ids = torch.tensor([[5, 9, 7, 9], [9, 3, 9, 3], [1, 2, 3, 4]])
    assert completion_mask(ids, [9]).tolist() == [[1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 1]]
    assert completion_mask(ids, [7, 9]).tolist()[0] == [1, 1, 0, 0]
