"""Rewards as plain callables `f(prompts, completions, **columns) -> list[float | None]`, all mepbench's scorers.

R_acc (emotion-wheel or word set-F1), R_fmt and R_omni come from `mepbench.scoring`. A `CueScorer` embeds a batch's clauses and cues once
and serves every cue-based reward part and the clause routing of the Omni-Perception Loss from that one result.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mepbench.scoring import (
    DEFAULT_DELTA,
    Embedder,
    OmniPerception,
    completion_text,
    format_reward,
    make_accuracy_reward,
    omni_perception,
)

RewardFn = Callable[..., list[float | None]]
CUE_CATEGORIES = ("video", "audio", "emotion")

# Weight presets (oppo-paper.md §3.1 / §3.2): the paper's R_acc + R_fmt + α·R_omni (α = 0.5), and the authors'
# final script 1.0·R_acc + 0.1·R_fmt + 0.5·mean(S_V, S_A) + 0.5·S_E. Cue parts are dropped for the baseline.
PRESETS: dict[str, dict[str, float]] = {
    "paper": {"accuracy": 1.0, "format": 1.0, "omni": 0.5},
    "code": {"accuracy": 1.0, "format": 0.1, "perception": 0.5, "emotion_cues": 0.5},
}
CUE_REWARDS = ("omni", "perception", "emotion_cues")


class RewardError(RuntimeError):
    """A reward function raised, or returned a non-finite value or a list of the wrong length; names the sample."""


class CueScorer:
    """Scores a batch's completions against their reference cues with mepbench's `omni_perception` (one embedder
    call for all clause and cue texts) and keeps the last batch's result, so the reward parts and the routing of the
    loss reuse it instead of embedding again."""

    def __init__(self, embedder: Embedder, delta: float = DEFAULT_DELTA):
        self.embedder, self.delta = embedder, delta
        self._key: tuple[Any, ...] | None = None
        self._result: list[OmniPerception] = []
        self.calls = 0

    def score(self, completions: Sequence[Any], cues: Sequence[Mapping[str, Sequence[str]] | None]
              ) -> list[OmniPerception]:
        """Per completion: R_omni over video/audio/emotion, per-category S_m, and the routed clauses."""
        texts = [completion_text(c) for c in completions]
        key = (tuple(texts), json.dumps([c or {} for c in cues], sort_keys=True, default=list))
        if key != self._key:
            self.calls += 1
            self._result = omni_perception(texts, [c or {} for c in cues], self.embedder, delta=self.delta,
                                           categories=CUE_CATEGORIES)
            self._key = key
        return self._result

    def reward(self, categories: Sequence[str], name: str) -> RewardFn:
        """A reward callable: the mean of S_m over `categories` that have reference cues (column `cues`); None where
        none has (R_omni = all three; the code's perception part = video + audio; its coherence part = emotion)."""
        def fn(prompts: Sequence[Any], completions: Sequence[Any], cues: Sequence[Any],
               **columns: Any) -> list[float | None]:
            out: list[float | None] = []
            for result in self.score(completions, cues):
                parts = [result.per_category[m] for m in categories if m in result.per_category]
                out.append(sum(parts) / len(parts) if parts else None)
            return out

        fn.__name__ = fn.__qualname__ = name
        return fn


@dataclass(frozen=True)
class WeightedReward:
    """A named reward callable and its weight in the total."""

    name: str
    fn: RewardFn
    weight: float


def build_rewards(weights: Mapping[str, float], scorer: CueScorer | None = None, wheel_dir: str | Path | None = None,
                  synonyms: Mapping[str, str] | None = None,
                  extra: Mapping[str, RewardFn] | None = None) -> list[WeightedReward]:
    """The weighted reward list for `weights` by name: accuracy, format, omni, perception, emotion_cues, or a name in
    `extra` (user callables). Zero weights are dropped; the cue rewards need a `scorer`."""
    builtin: dict[str, Callable[[], RewardFn]] = {
        "accuracy": lambda: make_accuracy_reward(wheel_dir, synonyms),
        "format": lambda: format_reward,
    }
    if scorer is not None:
        builtin.update(omni=lambda: scorer.reward(CUE_CATEGORIES, "omni"),
                       perception=lambda: scorer.reward(("video", "audio"), "perception"),
                       emotion_cues=lambda: scorer.reward(("emotion",), "emotion_cues"))
    out = []
    for name, weight in weights.items():
        if not weight:
            continue
        if extra and name in extra:
            out.append(WeightedReward(name, extra[name], float(weight)))
        elif name in builtin:
            out.append(WeightedReward(name, builtin[name](), float(weight)))
        else:
            known = sorted({*builtin, *(extra or {})})
            raise KeyError(f"unknown reward {name!r}" + (" (cue rewards need a cue scorer)" if name in CUE_REWARDS
                                                          else "") + f"; known: {known}")
    return out


@dataclass
class RewardBatch:
    """Per-completion totals Σ w·r (None parts count 0) and every part (None where undefined)."""

    total: list[float]
    parts: dict[str, list[float | None]]


def _call_one(reward: WeightedReward, prompts: Sequence[Any], completions: Sequence[Any],
              columns: Mapping[str, Sequence[Any]], ids: Sequence[str]) -> list[float | None]:
    try:
        values = list(reward.fn(prompts, completions, **columns))
    except Exception as exc:
        for i, sid in enumerate(ids):  # find the first sample that fails on its own
            try:
                reward.fn(prompts[i:i + 1], completions[i:i + 1], **{k: v[i:i + 1] for k, v in columns.items()})
            except Exception as inner:
                raise RewardError(f"reward {reward.name!r} failed on sample {sid!r} (completion {i}): "
                                  f"{type(inner).__name__}: {inner}") from inner
        raise RewardError(f"reward {reward.name!r} failed on the batch of samples {sorted(set(ids))} "
                          f"({type(exc).__name__}: {exc})") from exc
    if len(values) != len(completions):
        raise RewardError(f"reward {reward.name!r} returned {len(values)} values for {len(completions)} completions")
    for i, value in enumerate(values):
        if value is not None and not math.isfinite(value):
            raise RewardError(f"reward {reward.name!r} returned {value} for sample {ids[i]!r} (completion {i})")
    return [None if v is None else float(v) for v in values]


def compute_rewards(rewards: Sequence[WeightedReward], prompts: Sequence[Any], completions: Sequence[Any],
                    columns: Mapping[str, Sequence[Any]], ids: Sequence[str]) -> RewardBatch:
    """Call every reward on the batch; an exception or a NaN/inf is a RewardError naming the reward and sample id."""
    parts = {r.name: _call_one(r, prompts, completions, columns, ids) for r in rewards}
    total = [0.0] * len(completions)
    for reward in rewards:
        for i, value in enumerate(parts[reward.name]):
            if value is not None:
                total[i] += reward.weight * value
    return RewardBatch(total, parts)
