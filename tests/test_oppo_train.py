"""SFT and RL on tiny-omni + mep-synth (CPU): loss goes down, every variant updates the weights, exact resume,
non-finite and failing rewards stop the step with the weights unchanged."""

from __future__ import annotations

import json

import pytest
import torch

from mepbench.scoring.vocabulary import AUDIO_CUES, VISUAL_CUES
from oppo_train.config import RLConfig, SFTConfig, load_config
from oppo_train.engine import TrainingError
from oppo_train.metrics import read_metrics
from oppo_train.rl import RLTrainer, Rollout
from oppo_train.sft import SFTTrainer
from oppo_train.variants import VARIANTS

FAST = ["data.n=4", "prompts_per_step=2", "resume=never", "checkpoint_every=0", "lr=1e-3"]
RL_FAST = ["max_new_tokens=12", "rewards.embedder=exact", "num_generations=2", "max_steps=2"]


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on the shared 2-core machine, two spinning threads per op are 10x slower under load."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def length_reward(prompts, completions, **_):
    """A reward that differs between completions, so that random-model groups get non-zero advantages."""
    return [len(c) / 50 for c in completions]


def rl_config(tmp_path, cache, *extra: str) -> RLConfig:
    weights = "rewards.weights={accuracy: 1.0, format: 1.0, omni: 0.5, length: 1.0}"
    return load_config(RLConfig, None, [*FAST, *RL_FAST, weights,
                                        f"output_dir={tmp_path / 'run'}", f"cache_dir={cache}", *extra])


def trainer(tmp_path, cache, *extra: str) -> RLTrainer:
    return RLTrainer(rl_config(tmp_path, cache, *extra), extra_rewards={"length": length_reward})


def weights(t) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in t.unwrapped.model.state_dict().items()}


def test_sft_lowers_the_loss(tmp_path, session_cache):
    config = load_config(SFTConfig, None, [*FAST, "max_steps=6", "lr=3e-3", f"output_dir={tmp_path / 'sft'}",
                                           f"cache_dir={session_cache}", "micro_batch_prompts=1"])
    final = SFTTrainer(config).train()
    losses = [m["loss"] for m in read_metrics(tmp_path / "sft")]
    assert len(losses) == 6 and losses[-1] < 0.8 * losses[0]
    assert (final / "model.safetensors").is_file() and (final / "tokenizer.json").is_file()


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_two_rl_steps_per_variant_change_the_weights(tmp_path, session_cache, variant):
    t = trainer(tmp_path, session_cache, f"variant={variant}", f"tensorboard={variant == 'oppo'}")
    before = weights(t)
    t.train()
    after = weights(t)
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed and all(k.startswith(("model.language_model", "lm_head")) for k in changed)  # towers frozen
    rows = read_metrics(tmp_path / "run")
    assert [r["step"] for r in rows] == [1, 2]
    for row in rows:
        assert row["advantage/abs_mean"] > 0 and row["reward/length"] > 0
        assert ("reward/omni" in row) == VARIANTS[variant].cue_rewards
        perception = {"none": [], "papo": ["video+audio"], "papo_dual": ["audio", "video"],
                      "oppo": ["audio", "video"], "oppo_swapped": ["audio", "video"]}[VARIANTS[variant].perception.name]
        assert sorted(k[3:] for k in row if k.startswith("kl/") and k != "kl/ref") == perception
        assert ("loss/perception" in row) == bool(perception)
    if variant == "oppo":
        assert list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
    if VARIANTS[variant].perception.name in ("papo", "papo_dual"):
        assert rows[0]["tokens/video" if "dual" in variant else "tokens/video+audio"] == \
            rows[0]["tokens/completion_mean"] * 4


class ContainsEmbedder:
    """Bag of the mep-synth cue phrases a text contains (unit norm): a clause naming a cue matches it exactly."""

    name = "contains"
    VOCAB = (*VISUAL_CUES, *AUDIO_CUES, "happy", "sad", "angry", "surprised", "fearful", "neutral")

    def encode(self, texts):
        import numpy as np

        rows = np.array([[1.0 if v in t.lower() else 0.0 for v in self.VOCAB] + [0.1] for t in texts])
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def teacher_rollout(t: RLTrainer) -> Rollout:
    """Prompts with visual or acoustic reference cues, completed by their reference reasoning (which names them)."""
    chosen = [s for s in t.samples if s.cues["video"] or s.cues["audio"]][:3]
    samples = [s for s in chosen for _ in range(t.config.num_generations)]
    return t.make_rollout(samples, [s.reasoning for s in samples])


def test_oppo_routes_evidence_tokens_and_only_the_full_branch_has_gradient(tmp_path, session_cache):
    t = trainer(tmp_path, session_cache, "variant=oppo", "perception.beta=1.0", "perception.entropy_coef=0.0",
                "ref_kl_coef=0.0")
    t.scorer.embedder = ContainsEmbedder()
    r = teacher_rollout(t)
    t.score([r])
    t.precompute(r, 0)
    assert not (r.token_masks["video"] & r.token_masks["audio"]).any()
    for logp in r.masked_logp.values():
        assert logp.grad_fn is None and not logp.requires_grad  # the masked pass is no-grad
    tok = t.adapter.tokenizer
    for row, sample in enumerate(r.samples):
        for modality in ("video", "audio"):
            routed = tok.decode(r.completion_ids[row][r.token_masks[modality][row]])
            assert all(cue in routed for cue in sample.cues[modality])  # every cue's clause is routed
            assert bool(routed) == bool(sample.cues[modality])  # and nothing else
    assert r.token_masks["video"].sum() > 0 and r.token_masks["audio"].sum() > 0
    # with the authors' k1 the term's gradient is −β ∇ Σ_m mean_{T_m} log π(y|full): it ignores the masked copies
    policy = t.policy
    scores = policy(r.inputs, r.completion_ids, r.completion_mask, temperature=t.config.temperature)
    from oppo_train.core import k1, perception_loss

    kl = {m: k1(scores.logp, r.masked_logp[m]) for m in r.masked_logp}
    loss = perception_loss(scores.logp, kl, r.token_masks, r.completion_mask, beta=1.0).loss
    params = [p for p in policy.parameters() if p.requires_grad]
    got = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    counts = {m: r.token_masks[m].sum().clamp(min=1) for m in r.token_masks}
    want_loss = -sum((scores.logp * r.token_masks[m]).sum() / counts[m] for m in r.token_masks)
    want = torch.autograd.grad(want_loss, params, allow_unused=True)
    for g, w in zip(got, want):
        assert (g is None) == (w is None)
        if g is not None:
            assert torch.allclose(g, w, atol=1e-6)
    metrics = t.update([r])
    assert metrics["tokens/video"] == float(r.token_masks["video"].sum())
    assert metrics["kl/video"] != 0.0


def test_kill_and_resume_is_bit_exact(tmp_path, session_cache, monkeypatch):
    straight = trainer(tmp_path / "a", session_cache, "max_steps=3", "checkpoint_every=1")
    straight.train()
    want = weights(straight)
    want_rows = read_metrics(tmp_path / "a" / "run")

    killed = trainer(tmp_path / "b", session_cache, "max_steps=3", "checkpoint_every=2")
    original = RLTrainer.train_step

    def dies_at_step_3(self):
        if self.step == 2:
            raise KeyboardInterrupt("killed")
        return original(self)

    monkeypatch.setattr(RLTrainer, "train_step", dies_at_step_3)
    with pytest.raises(KeyboardInterrupt):
        killed.train()
    monkeypatch.setattr(RLTrainer, "train_step", original)
    resumed = trainer(tmp_path / "b", session_cache, "max_steps=3", "checkpoint_every=2", "resume=auto")
    resumed.train()
    assert resumed.last_checkpoint.name == "step-000003"
    got = weights(resumed)
    assert all(torch.equal(want[k], got[k]) for k in want)
    state = resumed.optimizer.state_dict()["state"]
    assert state and all(int(v["step"]) == 3 for v in state.values())
    got_rows = read_metrics(tmp_path / "b" / "run")
    assert [r["step"] for r in got_rows] == [1, 2, 3]
    timeless = lambda row: {k: v for k, v in row.items() if not k.startswith(("time/", "step_time"))}
    assert [timeless(r) for r in got_rows] == [timeless(r) for r in want_rows]


def test_nan_reward_stops_the_step_and_keeps_the_checkpoint(tmp_path, session_cache):
    calls = {"n": 0}

    def nan_on_second_step(prompts, completions, sample_id, **_):
        calls["n"] += 1
        return [float("nan") if calls["n"] > 1 and i == 1 else 0.5 for i in range(len(completions))]

    config = rl_config(tmp_path, session_cache, "checkpoint_every=1", "micro_batch_prompts=2",
                       "rewards.weights={format: 1.0, bad: 1.0}")
    t = RLTrainer(config, extra_rewards={"bad": nan_on_second_step})
    with pytest.raises(TrainingError) as err:
        t.train()
    message = str(err.value)
    bad_id = t.local_samples(1)[0].id
    assert "step 2" in message and "'bad' returned nan" in message and repr(bad_id) in message
    assert "step-000001" in message and (tmp_path / "run" / "checkpoints" / "step-000001").is_dir()
    assert not (tmp_path / "run" / "checkpoints" / "step-000002").exists()


def test_nan_loss_stops_before_the_weights_change(tmp_path, session_cache):
    t = trainer(tmp_path, session_cache, "max_steps=1", "perception.beta=.nan")
    before = weights(t)
    with pytest.raises(TrainingError, match=r"step 1: non-finite loss = nan.*weights changed.*none yet"):
        t.train()
    assert all(torch.equal(v, weights(t)[k]) for k, v in before.items())
    assert all(p.grad is None for p in t.policy.parameters())


def test_reward_exception_names_the_sample(tmp_path, session_cache):
    def fails_on_one(prompts, completions, sample_id, **_):
        return [1 / 0 if sid == target else 0.0 for sid in sample_id]

    t = RLTrainer(rl_config(tmp_path, session_cache, "rewards.weights={format: 1.0, fragile: 1.0}"),
                  extra_rewards={"fragile": fails_on_one})
    target = t.local_samples(0)[1].id
    with pytest.raises(TrainingError, match=rf"reward 'fragile' failed on sample '{target}'.*ZeroDivisionError"):
        t.train()
    assert json.loads(json.dumps(str(target)))  # the id is a plain string


@pytest.mark.parametrize("estimator,loss_type,scale", [("k3", "grpo", "group"), ("exact", "dr_grpo", "batch")])
def test_other_estimators_and_aggregations_update(tmp_path, session_cache, estimator, loss_type, scale):
    t = trainer(tmp_path, session_cache, f"perception.estimator={estimator}", f"loss_type={loss_type}",
                f"scale_rewards={scale}", "perception.kl_clip=0.2")
    t.scorer.embedder = ContainsEmbedder()
    r = teacher_rollout(t)
    t.score([r])
    t.precompute(r, 0)
    assert (estimator == "exact") == bool(r.masked_dist)
    before = weights(t)
    metrics = t.update([r])
    assert metrics["kl/video"] >= 0.0 and metrics["kl/audio"] >= 0.0  # k3 and the exact KL are never negative
    assert metrics["tokens/video"] > 0 and metrics["tokens/audio"] > 0
    assert any(not torch.equal(v, weights(t)[k]) for k, v in before.items())


# -- the optimised no-grad passes equal the plain ones -------------------------------------------------------------

def thinker_scores(policy, inputs, ids, mask, temperature):
    """Log-probs and log-distributions from the thinker's own forward on every row and token (the plain passes)."""
    model = policy.model
    prompt_len = inputs["input_ids"].shape[1]
    media = {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask")}
    hidden = model.model(input_ids=torch.cat([inputs["input_ids"], ids], 1), use_cache=False, **media,
                         attention_mask=torch.cat([inputs["attention_mask"], mask], 1)).last_hidden_state
    log_dist = torch.log_softmax(model.lm_head(hidden[:, prompt_len - 1:-1]).float() / temperature, -1)
    return log_dist.gather(-1, ids.unsqueeze(-1)).squeeze(-1), log_dist


def same_grads(got: list[torch.Tensor], want: list[torch.Tensor]) -> bool:
    """Equal to float32 accuracy relative to each gradient tensor's scale."""
    return all(float((g - w).abs().max()) <= 1e-5 * float(w.abs().max()) + 1e-7 for g, w in zip(got, want))


def mixed_rollout(t: RLTrainer, kinds: tuple[str, ...]) -> Rollout:
    """Reference completions of one prompt per kind: cues of both modalities, video only, audio only, none."""
    test = {"both": lambda c: c["video"] and c["audio"], "video": lambda c: c["video"] and not c["audio"],
            "audio": lambda c: c["audio"] and not c["video"], "none": lambda c: not c["video"] and not c["audio"]}
    chosen = [next(s for s in t.samples if test[kind](s.cues)) for kind in kinds]
    samples = [s for s in chosen for _ in range(t.config.num_generations)]
    return t.make_rollout(samples, [s.reasoning for s in samples])


def plain_precompute(t: RLTrainer, r: Rollout, salt: int) -> None:
    """The passes without the optimisations: every row and token, towers recomputed, the same feature masks."""
    from oppo_train.core import copy_name, mask_features
    from oppo_train.engine import step_seed

    c, temp = t.config, t.config.temperature
    r.token_masks = t.route(r)
    with torch.no_grad():
        r.ref_logp = thinker_scores(t.reference, r.inputs, r.completion_ids, r.completion_mask, temp)[0]
        for k, modalities in enumerate(t.strategy.copies):
            gen = torch.Generator().manual_seed(step_seed(c.seed, t.step, t.rank, 1, salt, k))
            masked = mask_features(r.inputs, modalities, c.perception.rho, gen)
            logp, log_dist = thinker_scores(t.unwrapped, masked, r.completion_ids, r.completion_mask, temp)
            name = copy_name(modalities)
            r.masked_logp[name] = logp
            if c.perception.estimator == "exact" and r.token_masks[name].any():
                r.masked_dist[name] = log_dist[r.token_masks[name]]


def loss_and_grads(t: RLTrainer, r: Rollout) -> tuple[float, dict[str, float], list[torch.Tensor]]:
    norms = {"rows": float(r.completion_mask.shape[0]), "tokens": float(r.completion_mask.sum()),
             **{n: float(m.sum()) for n, m in r.token_masks.items()}}
    loss, logs = t.micro_loss(r, norms, beta_ref=0.04)
    params = [p for p in t.policy.parameters() if p.requires_grad]
    return float(loss.detach()), logs, list(torch.autograd.grad(loss, params))


def test_policy_passes_equal_the_thinker_forward(tmp_path, session_cache):
    t = trainer(tmp_path, session_cache, "data.n=8")
    r = mixed_rollout(t, ("both", "video"))
    policy, temp = t.unwrapped, t.config.temperature
    want, _ = thinker_scores(policy, r.inputs, r.completion_ids, r.completion_mask, temp)
    with torch.no_grad():
        context = policy(r.inputs, r.completion_ids, r.completion_mask, encode=True)
    assert set(context.towers) == {"pixel_values_videos", "input_features"}  # both towers are frozen
    got = policy(r.inputs, r.completion_ids, r.completion_mask, temperature=temp, context=context)
    plain = policy(r.inputs, r.completion_ids, r.completion_mask, temperature=temp)
    mask = r.completion_mask.bool()
    assert torch.allclose(got.logp[mask], want[mask], atol=1e-6) and torch.equal(got.logp, plain.logp)
    params = [p for p in policy.parameters() if p.requires_grad]
    grads = torch.autograd.grad((got.logp * mask).sum(), params)
    assert same_grads(grads, torch.autograd.grad((want * mask).sum(), params))  # shared tower outputs: same gradient
    targets = torch.zeros_like(mask)
    targets[1, 3], targets[2, 7] = True, True  # rows 0 and 3 left out, every row stops at token 7
    with torch.no_grad():
        some = policy(r.inputs, r.completion_ids, r.completion_mask, temperature=temp, context=context, targets=targets)
        none = policy(r.inputs, r.completion_ids, r.completion_mask, temperature=temp, context=context,
                      targets=torch.zeros_like(mask))
    assert torch.allclose(some.logp[targets], want[targets].detach(), atol=1e-6)
    assert not some.logp[~targets].any() and some.entropy is None and not none.logp.any()


def test_text_only_policy_passes_equal_the_model_forward(tmp_path, session_cache):
    from mepbench.models.tiny_text import ensure_tiny_text

    t = trainer(tmp_path, session_cache, f"model.path={ensure_tiny_text(session_cache)}")
    r = t.make_rollout(t.samples[:2], [s.reasoning for s in t.samples[:2]])
    policy, temp = t.unwrapped, t.config.temperature
    want, _ = thinker_scores(policy, r.inputs, r.completion_ids, r.completion_mask, temp)  # no media: the plain LM
    with torch.no_grad():
        context = policy(r.inputs, r.completion_ids, r.completion_mask, encode=True)
        got = policy(r.inputs, r.completion_ids, r.completion_mask, temperature=temp, context=context)
        some = policy(r.inputs, r.completion_ids, r.completion_mask, temperature=temp, context=context,
                      targets=r.completion_mask.bool() & (torch.arange(r.completion_mask.shape[1]) < 5))
    mask = r.completion_mask.bool()
    assert context.positions is None and not context.towers  # a text model keeps its own positions
    assert torch.allclose(got.logp[mask], want[mask], atol=1e-6)
    assert torch.allclose(some.logp[:, :5], want[:, :5].detach(), atol=1e-6) and not some.logp[:, 5:].any()


@pytest.mark.parametrize("estimator", ["k1_authors", "k3", "exact"])
@pytest.mark.parametrize("kinds", [("both", "video", "audio", "none"), ("video", "none")])
def test_optimised_passes_give_the_plain_loss_and_gradient(tmp_path, session_cache, estimator, kinds):
    t = trainer(tmp_path, session_cache, "variant=oppo", "data.n=8", f"perception.estimator={estimator}",
                "perception.beta=1.0", "perception.entropy_coef=0.01")
    t.scorer.embedder = ContainsEmbedder()
    r = mixed_rollout(t, kinds)
    t.score([r])
    plain = Rollout(r.samples, r.inputs, r.completion_ids, r.completion_mask, r.texts, advantages=r.advantages)
    t.precompute(r, 0)
    plain_precompute(t, plain, 0)
    routed = {m: r.token_masks[m].any(1) for m in ("video", "audio")}
    assert routed["video"].any() and not routed["video"].all()  # some rows with routed tokens, some without
    if "audio" not in kinds and "both" not in kinds:
        assert not routed["audio"].any() and "audio" not in r.masked_logp  # no routed token: the pass is skipped
    for name, logp in r.masked_logp.items():
        assert not logp.requires_grad and logp.grad_fn is None
        routed_tokens = r.token_masks[name]
        assert torch.allclose(logp[routed_tokens], plain.masked_logp[name][routed_tokens], atol=1e-5)
    loss, logs, grads = loss_and_grads(t, r)
    want_loss, want_logs, want_grads = loss_and_grads(t, plain)
    assert loss == pytest.approx(want_loss, rel=1e-5, abs=1e-6)
    assert logs == pytest.approx(want_logs, rel=1e-5, abs=1e-6)
    assert same_grads(grads, want_grads)
