"""Stage 2 (paper §4–5): GRPO with the Omni-Perception Reward and Loss, and the ablation variants.

A step: sample G completions per prompt (`generate` or vLLM, placeholders suppressed); score them (rewards and,
for OPPO, clause routing from one cue-scoring pass); group advantages; no-grad passes for the reference and the masked
copies; then the clipped surrogate + β_ref·KL_ref + the perception term, with normalisers over the whole step.
"""

from __future__ import annotations

import contextlib
import importlib
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from mepbench.scoring import make_embedder
from mepbench.types import Sample
from oppo_train.config import ConfigError, RLConfig, apply_variant_defaults, validate
from oppo_train.core import (
    aggregate,
    black_patches,
    clipped_surrogate,
    copy_name,
    feature_keys,
    group_advantages,
    mask_features,
    perception_loss,
    route_tokens,
    token_kl,
)
from oppo_train.engine import Engine, Recent, step_seed
from oppo_train.policy import CompletionScores, Context, completion_mask, load_reference, to_device
from oppo_train.rewards import CUE_REWARDS, PRESETS, CueScorer, RewardError, build_rewards, compute_rewards
from oppo_train.rollout_vllm import VLLMRollout


@dataclass
class Rollout:
    """One micro-batch: prompts × G completions and what the update needs (filled in by `score` and `precompute`)."""

    samples: list[Sample]
    inputs: dict[str, Any]
    completion_ids: torch.Tensor
    completion_mask: torch.Tensor
    texts: list[str]
    rewards: list[float] = field(default_factory=list)
    parts: dict[str, list[float | None]] = field(default_factory=dict)
    advantages: torch.Tensor | None = None
    ref_logp: torch.Tensor | None = None
    masked_logp: dict[str, torch.Tensor] = field(default_factory=dict)
    masked_dist: dict[str, torch.Tensor] = field(default_factory=dict)  # (N_m, V) at the positions of T_m (exact KL)
    token_masks: dict[str, torch.Tensor] = field(default_factory=dict)
    context: Context | None = None


def import_callable(path: str) -> Any:
    """`module:function` → the function (user reward callables in configs)."""
    module, _, name = path.partition(":")
    if not name:
        raise ConfigError(f"rewards.extra: {path!r} is not module:function")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"rewards.extra: cannot import {path!r} ({exc})") from exc


def reward_weights(config: RLConfig) -> dict[str, float]:
    """The reward weights: explicit `rewards.weights`, else the preset (α on R_omni for the paper's); cue parts dropped
    for the baseline variant."""
    weights = dict(config.rewards.weights or PRESETS[config.rewards.preset])
    if config.rewards.weights is None and config.rewards.preset == "paper":
        weights["omni"] = config.rewards.alpha
    if not config.cue_rewards:
        weights = {k: v for k, v in weights.items() if k not in CUE_REWARDS}
    return weights


TOKEN_SUMS = ("kl/ref", "clip_fraction", "entropy", "nll")


class RLTrainer(Engine):
    """The RL stage for every variant of `oppo_train.variants` (the paper's ablation rows, PAPO, the controls)."""

    stage = "rl"

    def __init__(self, config: RLConfig, *, extra_rewards: dict[str, Any] | None = None):
        apply_variant_defaults(config)
        validate(config)
        super().__init__(config)
        self.config: RLConfig = config  # narrowed for the RL fields
        self.strategy = config.strategy
        extra = {name: import_callable(path) for name, path in config.rewards.extra.items()}
        extra.update(extra_rewards or {})
        needs_scorer = config.cue_rewards or self.strategy.routed
        self.scorer = CueScorer(make_embedder(config.rewards.embedder), config.rewards.delta) if needs_scorer else None
        self.rewards = build_rewards(reward_weights(config), self.scorer, config.rewards.wheel_dir,
                                     self.task.synonyms, extra)
        self.reference = None
        if config.ref_kl_coef > 0:
            self.reference = load_reference(config.model, self.cache_dir, str(self.accelerator.device))
            if self.accelerator.distributed_type.value in ("FSDP", "DEEPSPEED"):
                self.reference = self.accelerator.prepare_model(self.reference, evaluation_mode=True)
        self.black = black_patches(self.adapter.processor) if config.perception.mask == "patch" else {}
        self._prompts = Recent()
        self.vllm = None
        if config.rollout.engine == "vllm":
            self.vllm = VLLMRollout(config, self.model_path, self.adapter, rank=self.rank, world=self.world)

    # -- schedule ----------------------------------------------------------------------------------------------------

    def kl_coef(self, step: int) -> float:
        """β_ref at `step`: linear from ref_kl_coef to ref_kl_final over the first ref_kl_decay of training, then
        constant (the authors' code); constant ref_kl_coef when ref_kl_final is None."""
        c = self.config
        if c.ref_kl_final is None:
            return c.ref_kl_coef
        span = max(1.0, c.ref_kl_decay * self.total_steps)
        frac = min(1.0, step / span)
        return c.ref_kl_coef + (c.ref_kl_final - c.ref_kl_coef) * frac

    # -- rollout -----------------------------------------------------------------------------------------------------

    def generation_kwargs(self) -> dict[str, Any]:
        """Sampling settings; media placeholder/marker tokens are suppressed."""
        c, a = self.config, self.adapter
        return {"do_sample": True, "temperature": c.temperature, "top_p": c.top_p, "top_k": c.top_k,
                "max_new_tokens": c.max_new_tokens, "suppress_tokens": a.suppress_token_ids() or None,
                "eos_token_id": a.eos_token_ids(), "pad_token_id": a.pad_token_id(), "num_beams": 1,
                "repetition_penalty": 1.0}

    def generate(self, samples: list[Sample], salt: int) -> Rollout:
        """G sampled completions for each prompt, trimmed to the longest; seeded by (seed, step, process, salt). With
        `rollout.engine: vllm` the vLLM engine samples them, after loading the policy's weights if they changed."""
        rows = [s for s in samples for _ in range(self.config.num_generations)]
        inputs = to_device(self.adapter.collate([self.prepared(s) for s in rows]), self.accelerator.device,
                           self.dtype)
        seed = step_seed(self.config.seed, self.step, self.rank, 0, salt)
        if self.vllm is not None:
            if self.vllm.synced_step != self.step:
                self.vllm.sync_weights(self.unwrapped.model, self.step)
            ids = self.vllm.generate([self.request(s) for s in samples], seed).to(self.accelerator.device)
        else:
            torch.manual_seed(seed)
            with torch.no_grad():
                out = self.policy(inputs, generate=self.generation_kwargs())
            ids = out[:, inputs["input_ids"].shape[1]:]
        mask = completion_mask(ids, self.adapter.eos_token_ids())
        width = max(1, int(mask.sum(1).max()))
        ids, mask = ids[:, :width].contiguous(), mask[:, :width].contiguous()
        lengths = mask.sum(1).tolist()
        texts = self.adapter.tokenizer.batch_decode([row[:n] for row, n in zip(ids.tolist(), lengths)],
                                                    skip_special_tokens=True)
        return Rollout(rows, inputs, ids, mask, texts)

    def make_rollout(self, samples: list[Sample], texts: list[str]) -> Rollout:
        """A rollout of given completion texts (one per sample row, e.g. reference answers) instead of sampled ones:
        tokenised, end-of-turn appended, right-padded."""
        tok, eos = self.adapter.tokenizer, self.adapter.eos_token_ids()[0]
        rows = [list(tok(t, add_special_tokens=False).input_ids) + [eos] for t in texts]
        width = max(map(len, rows))
        device = self.accelerator.device
        ids = torch.tensor([r + [eos] * (width - len(r)) for r in rows], device=device)
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=device)
        inputs = to_device(self.adapter.collate([self.prepared(s) for s in samples]), device, self.dtype)
        return Rollout(list(samples), inputs, ids, mask, tok.batch_decode(rows, skip_special_tokens=True))

    def prompt_text(self, sample: Sample) -> str:
        """The rendered prompt (what TRL-style reward functions receive as `prompts`)."""
        return self._prompts.get(sample.id, lambda: self.adapter.render(self.request(sample)))

    def score(self, rollouts: list[Rollout]) -> None:
        """Rewards (errors and NaN/inf stop the step on every process, naming the sample) and group advantages."""
        error: RewardError | None = None
        for r in rollouts:
            columns = {"label": [s.label for s in r.samples], "cues": [s.cues for s in r.samples],
                       "subtitle": [s.subtitle for s in r.samples], "sample_id": [s.id for s in r.samples]}
            try:
                batch = compute_rewards(self.rewards, [self.prompt_text(s) for s in r.samples], r.texts, columns,
                                        columns["sample_id"])
            except RewardError as exc:
                error = exc
                break
            r.rewards, r.parts = batch.total, batch.parts
        if self.any_process(error is not None):
            raise self.fail(str(error) if error else "a reward failed on another process") from error
        rewards = torch.tensor([x for r in rollouts for x in r.rewards], dtype=torch.float64)
        scale = self.config.scale_rewards
        if scale == "batch" and self.world > 1:
            gathered = self.accelerator.gather(rewards.to(self.accelerator.device)).cpu()
            adv = group_advantages(rewards, self.config.num_generations, "none") / (gathered.std() + 1e-4)
        else:
            adv = group_advantages(rewards, self.config.num_generations, scale)
        start = 0
        for r in rollouts:
            r.advantages = adv[start:start + len(r.rewards)].float().to(self.accelerator.device)
            start += len(r.rewards)

    # -- no-grad passes ----------------------------------------------------------------------------------------------

    def route(self, r: Rollout) -> dict[str, torch.Tensor]:
        """T_V / T_A: tokens of the clauses routed by their best cue match (one cached cue-scoring pass)."""
        assert self.scorer is not None
        results = self.scorer.score(r.texts, [s.cues for s in r.samples])
        lengths = r.completion_mask.sum(1).tolist()
        ids = [row[:n] for row, n in zip(r.completion_ids.tolist(), lengths)]
        masks = route_tokens(self.adapter.tokenizer, ids, r.texts, [x.clauses for x in results],
                             r.completion_ids.shape[1])
        return {m: v.to(self.accelerator.device) & r.completion_mask.bool() for m, v in masks.items()}

    def precompute(self, r: Rollout, salt: int) -> None:
        """The passes' shared context (rope positions, frozen towers' outputs), reference log-probs, the token sets of
        the perception term, then each masked copy's log-probs on its tokens only (the masked modality's features
        masked with ratio ρ in the variant's style; no gradient; skipped when no process has a token for it), with
        the log-distributions there for the exact KL."""
        c, temp = self.config, self.config.temperature
        exact = c.perception.estimator == "exact"
        copies = self.strategy.copies
        with torch.no_grad():
            r.context = self.policy(r.inputs, r.completion_ids, r.completion_mask, encode=True)
            if self.reference is not None:
                r.ref_logp = self.reference(r.inputs, r.completion_ids, r.completion_mask, temperature=temp,
                                            context=r.context, targets=r.completion_mask.bool()).logp
        r.token_masks = self.strategy.token_masks(r.completion_mask, lambda: self.route(r))
        with torch.no_grad():
            for k, modalities in enumerate(copies):
                name = copy_name(modalities)
                if not self.any_process(bool(r.token_masks[name].any())):
                    continue
                gen = torch.Generator(device=self.accelerator.device)
                gen.manual_seed(step_seed(c.seed, self.step, self.rank, 1, salt, k))
                masked = mask_features(r.inputs, modalities, c.perception.rho, gen, style=c.perception.mask,
                                       fill=self.black)
                scores = self.policy(masked, r.completion_ids, r.completion_mask, temperature=temp, with_dist=exact,
                                     context=r.context.without(feature_keys(modalities)), targets=r.token_masks[name],
                                     chunk_size=c.perception.chunk_size)
                r.masked_logp[name] = scores.logp
                if exact:
                    r.masked_dist[name] = scores.log_dist

    # -- update ------------------------------------------------------------------------------------------------------

    def _global(self, values: list[float]) -> list[float]:
        """Sums over processes."""
        if self.world == 1:
            return values
        return self.accelerator.reduce(torch.tensor(values, device=self.accelerator.device), "sum").tolist()

    def micro_loss(self, r: Rollout, norms: dict[str, float], beta_ref: float) -> tuple[torch.Tensor, dict[str, float]]:
        """One micro-batch's share of the step loss: clipped surrogate + β_ref·KL_ref aggregated by `loss_type`, plus
        the perception term; `norms` are the step's row, token and routed-token counts divided by the processes."""
        c = self.config
        assert r.advantages is not None, "score() first"
        against = {n: (r.token_masks[n], r.masked_dist[n]) for n in r.masked_dist}
        scores = self.policy(r.inputs, r.completion_ids, r.completion_mask, temperature=c.temperature,
                             context=r.context, kl_against=against, chunk_size=c.perception.chunk_size)
        mask = r.completion_mask
        per_token, clipped = clipped_surrogate(scores.logp, scores.logp.detach(), r.advantages, c.clip_eps,
                                               c.clip_eps_high)
        logs = {"clip_fraction": float((clipped & mask.bool()).sum()), "nll": float((-scores.logp.detach() * mask).sum()),
                "entropy": float((scores.entropy * mask).sum())}
        if r.ref_logp is not None:
            ref_kl = token_kl(c.ref_kl_estimator, scores.logp, r.ref_logp)
            per_token = per_token + beta_ref * ref_kl
            logs["kl/ref"] = float((ref_kl.detach() * mask).sum())
        loss = aggregate(per_token, mask, c.loss_type, num_sequences=norms["rows"], num_tokens=norms["tokens"],
                         max_length=c.max_new_tokens)
        logs["loss/policy"] = float(loss.detach())
        if r.token_masks:
            kl = {n: self.copy_kl(scores, r, n) for n in r.token_masks}
            term = perception_loss(scores.logp, kl, r.token_masks, mask, beta=c.perception.beta,
                                   entropy_coef=c.perception.entropy_coef, kl_clip=c.perception.kl_clip,
                                   token_counts={n: norms[n] for n in r.token_masks},
                                   completion_tokens=norms["tokens"])
            loss = loss + term.loss
            logs["loss/perception"] = float(term.loss.detach())
            logs.update({f"kl/{n}": value for n, value in term.kl.items()})
        return loss, logs

    def copy_kl(self, scores: CompletionScores, r: Rollout, name: str) -> torch.Tensor:
        """Per-token KL(full ‖ masked copy `name`): exact (computed in the update pass at the copy's positions) or the
        configured sampled estimate; zeros when the copy was skipped (no process had a token for it)."""
        if name not in r.masked_logp:
            return torch.zeros_like(scores.logp.detach())
        if self.config.perception.estimator == "exact":
            return scores.kl.get(name, torch.zeros_like(scores.logp.detach()))
        return token_kl(self.config.perception.estimator, scores.logp, r.masked_logp[name])

    def update(self, rollouts: list[Rollout]) -> dict[str, Any]:
        """Gradient passes over the micro-batches with whole-step normalisers (over all processes; DDP averages the
        gradients, hence the division by the process count), then one optimiser step."""
        names = sorted(rollouts[0].token_masks)
        local = [float(sum(r.completion_mask.shape[0] for r in rollouts)),
                 float(sum(int(r.completion_mask.sum()) for r in rollouts)),
                 *[float(sum(int(r.token_masks[n].sum()) for r in rollouts)) for n in names]]
        totals = dict(zip(["rows", "tokens", *names], self._global(local)))
        norms = {k: v / self.world for k, v in totals.items()}
        beta_ref = self.kl_coef(self.step)
        sums: dict[str, float] = {}
        for k, r in enumerate(rollouts):
            last = k == len(rollouts) - 1
            with contextlib.nullcontext() if last else self.accelerator.no_sync(self.policy):
                loss, logs = self.micro_loss(r, norms, beta_ref)
                self.check_finite({"loss": float(loss.detach())})
                self.accelerator.backward(loss)
            for key, value in logs.items():
                sums[key] = sums.get(key, 0.0) + value
        norm = self.optimizer_step()
        keys = sorted(sums)
        out = {"grad_norm": norm, "kl_coef": beta_ref, "tokens/completion_mean": totals["tokens"] / totals["rows"]}
        for key, value in zip(keys, self._global([sums[k] for k in keys])):
            out[key] = value / totals["tokens"] if key in TOKEN_SUMS else value / self.world
        out.update({f"tokens/{n}": totals[n] for n in names})
        return out

    # -- the step ----------------------------------------------------------------------------------------------------

    def train_step(self) -> dict[str, Any]:
        """Rollout, score, precompute, update; returns the step's metrics."""
        t0 = time.perf_counter()
        rollouts = [self.generate(chunk, k) for k, chunk in enumerate(self.micro_batches(self.local_samples(self.step)))]
        t1 = time.perf_counter()
        self.score(rollouts)
        for k, r in enumerate(rollouts):
            self.precompute(r, k)
        t2 = time.perf_counter()
        metrics = self.update(rollouts)
        metrics.update(self.reward_metrics(rollouts))
        metrics.update({"time/rollout": t1 - t0, "time/score_precompute": t2 - t1,
                        "time/update": time.perf_counter() - t2})
        return metrics

    def reward_metrics(self, rollouts: list[Rollout]) -> dict[str, float]:
        """Over all processes: mean and std of the total reward, mean of each part over the completions where it is
        defined, mean |advantage|."""
        totals = [x for r in rollouts for x in r.rewards]
        adv = [abs(a) for r in rollouts if r.advantages is not None for a in r.advantages.tolist()]
        names = list(rollouts[0].parts)
        local = [float(len(totals)), sum(totals), sum(t * t for t in totals), sum(adv)]
        for name in names:
            values = [v for r in rollouts for v in r.parts[name] if v is not None]
            local += [float(len(values)), sum(values)]
        n, s, s2, a, *parts = self._global(local)
        var = max(0.0, (s2 - s * s / n) / (n - 1)) if n > 1 else 0.0
        out = {"reward/total": s / n, "reward/total_std": var ** 0.5, "advantage/abs_mean": a / n}
        for i, name in enumerate(names):
            count, total = parts[2 * i], parts[2 * i + 1]
            out[f"reward/{name}"] = total / count if count else float("nan")
        return out
