"""MER-UniBench metrics on resamples: the per-clip shares must give the published scorer's number on the whole set
and on every resample (duplicated clips included), for HIT, open-set Fs and sentiment WAF."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import shared_fixture
from mepbench.scoring.mer_metrics import hit_rate, openset_scores, sentiment_scores
from mepbench.scoring.mer_resample import clip_shares, metric_on
from mepbench.scoring.metrics import bootstrap_indices
from mepbench.scoring.wheel import load_wheels

WORDS = ["happy", "joy", "sad", "angry", "surprise", "fear", "worried", "neutral", "disgust", "calm", "excited"]


@pytest.fixture(scope="module")
def wheels():
    return load_wheels(shared_fixture("emotion_wheel"))


def lists(rng: np.random.Generator, n: int, most: int = 3) -> list[str]:
    return ["[" + ", ".join(rng.choice(WORDS, size=rng.integers(0, most + 1), replace=False)) + "]" for _ in range(n)]


def published(kind: str, predictions: list, labels: list, wheels) -> float:
    if kind == "hit":
        return hit_rate(predictions, labels, wheels).hit
    if kind == "openset":
        return openset_scores(predictions, labels, wheels).fs
    return sentiment_scores(predictions, labels).waf


def cases(kind: str, rng: np.random.Generator, n: int) -> tuple[list, list]:
    if kind == "hit":
        return lists(rng, n), list(rng.choice(WORDS, size=n))
    if kind == "openset":
        return lists(rng, n), lists(rng, n, most=2)
    return (list(rng.choice(["positive", "negative", "neutral", "no idea"], size=n)),
            list(rng.choice([-2.4, -1.0, 0.0, 0.6, 3.0], size=n)))


@pytest.mark.parametrize("kind", ["hit", "openset", "sentiment"])
def test_shares_give_the_published_number_on_the_set_and_on_every_resample(kind, wheels):
    rng = np.random.default_rng(7)
    predictions, labels = cases(kind, rng, 60)
    shares = clip_shares(kind, predictions, labels, wheels)
    assert metric_on(shares, np.arange(60)) == pytest.approx(published(kind, predictions, labels, wheels), abs=1e-9)
    idx = bootstrap_indices(60, 25, seed=3)
    expected = [published(kind, [predictions[i] for i in row], [labels[i] for i in row], wheels) for row in idx]
    assert metric_on(shares, idx) == pytest.approx(np.array(expected), abs=1e-9, nan_ok=True)


def test_a_resample_that_scores_no_clip_is_nan_like_the_published_scorer(wheels):
    hit = clip_shares("hit", ["[happy]", "[sad]"], ["neutral", "happy"], wheels)
    assert np.isnan(metric_on(hit, np.array([0, 0])))  # only the neutral clip: no wheel scores anything
    sentiment = clip_shares("sentiment", ["positive", "negative"], [0.0, 1.0], None)
    assert np.isnan(metric_on(sentiment, np.array([0, 0]))) and metric_on(sentiment, np.array([1])) == 0.0
    with pytest.raises(ValueError, match="2 predictions for 1 labels"):
        clip_shares("hit", ["[a]", "[b]"], ["happy"], wheels)


def test_paired_drop_pairs_the_clips_of_both_variants(wheels):
    from mepbench.scoring.mer_resample import paired_drop

    rng = np.random.default_rng(11)
    predictions, labels = cases("hit", rng, 80)
    idx = bootstrap_indices(80, 200, seed=0)
    value, boot = paired_drop("hit", predictions, predictions, labels, wheels, idx, chunk=30)
    assert value == 0.0 and boot.shape == (200,) and not boot.any()  # the same answers never drop
    blind = ["[]"] * 80  # a masked variant that names nothing scores 0
    value, boot = paired_drop("hit", predictions, blind, labels, wheels, idx, chunk=30)
    assert value == pytest.approx(hit_rate(predictions, labels, wheels).hit)
    full_boot = metric_on(clip_shares("hit", predictions, labels, wheels), idx)
    assert boot == pytest.approx(full_boot) and np.percentile(boot, 2.5) <= value <= np.percentile(boot, 97.5)


def test_resamples_where_the_metric_is_undefined_are_left_out(wheels):
    from mepbench.scoring.mer_resample import paired_drop

    idx = np.array([[0, 0], [1, 1], [0, 1]])  # the first resample holds only the neutral clip
    value, boot = paired_drop("hit", ["[happy]", "[happy]"], ["[]", "[]"], ["neutral", "happy"], wheels, idx)
    assert value == pytest.approx(100.0) and boot == pytest.approx([100.0, 100.0])
