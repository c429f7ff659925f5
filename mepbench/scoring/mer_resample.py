"""MER-UniBench's published metrics on many bootstrap resamples at once, for paired reliance intervals. Each clip's
share of the metric (its HIT score per wheel, its open-set precision and recall per wheel, its binary sentiment) is
worked out once; a resample is then a row of clip indices over those shares, and the whole clip set gives exactly
the number `mer_metrics.score_checkpoint` gives."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mepbench.scoring.mer_metrics import SCALE, Labels, map_to_wheels, parse_sentiment
from mepbench.scoring.metrics import weighted_f1
from mepbench.scoring.wheel import EmotionWheels

EXCLUDED = -5  # a class code no prediction or truth has: the clip drops out of every count


@dataclass(frozen=True)
class ClipShares:
    """Per-clip parts of one metric: `kind` hit | openset | sentiment; `a`, `b`: (n, wheels) hit scores and unused,
    or precision and recall, or (n,) truth and guess codes; `counted`: which clips each wheel (or the metric) scores."""

    kind: str
    a: np.ndarray
    b: np.ndarray
    counted: np.ndarray


def clip_shares(kind: str, predictions: Sequence[Labels], labels: Sequence[Labels | float],
                wheels: EmotionWheels | None) -> ClipShares:
    """Each clip's part of the `kind` metric, predictions and labels aligned by position."""
    if len(predictions) != len(labels):
        raise ValueError(f"{len(predictions)} predictions for {len(labels)} labels")
    if kind == "sentiment":
        values = np.asarray(labels, dtype=float)
        keep = values != 0
        truth = np.where(keep, (values > 0).astype(int), EXCLUDED)
        guess = np.where(keep, (np.array([parse_sentiment(p) for p in predictions], dtype=int) > 0).astype(int),
                         EXCLUDED)
        return ClipShares(kind, truth, guess, keep)
    if wheels is None:
        raise ValueError(f"the emotion wheels are required for {kind}")
    preds, golds = map_to_wheels(predictions, wheels), map_to_wheels(labels, wheels)
    counted = np.array([[bool(g[k]) for k in range(len(g))] for g in golds], dtype=bool).reshape(len(golds), -1)
    hits = np.array([[len(p[k] & g[k]) for k in range(len(g))] for p, g in zip(preds, golds)],
                    dtype=float).reshape(counted.shape)
    if kind == "hit":
        return ClipShares(kind, hits, np.zeros_like(hits), counted)
    sizes = np.array([[len(p[k]) for k in range(len(p))] for p in preds], dtype=float).reshape(counted.shape)
    gold_sizes = np.array([[len(g[k]) for k in range(len(g))] for g in golds], dtype=float).reshape(counted.shape)
    has = sizes > 0
    precision = np.where(has, hits / np.maximum(sizes, 1), 0.0)
    recall = np.where(has, hits / np.maximum(gold_sizes, 1), 0.0)
    return ClipShares(kind, precision, recall, counted)


def metric_on(shares: ClipShares, idx: np.ndarray) -> np.ndarray:
    """The metric (0–100) on the clips of each row of `idx` (shape (..., m)); NaN where a row scores no clip."""
    if shares.kind == "sentiment":
        truth, guess = shares.a[idx], shares.b[idx]
        scored = shares.counted[idx].any(axis=-1)
        return np.where(scored, SCALE * weighted_f1(truth, guess, 2), np.nan)
    counted = shares.counted[idx]
    denominator = counted.sum(axis=-2)
    with np.errstate(invalid="ignore", divide="ignore"):
        first = (shares.a[idx] * counted).sum(axis=-2) / denominator
        if shares.kind == "hit":
            per_wheel = SCALE * first
        else:
            second = (shares.b[idx] * counted).sum(axis=-2) / denominator
            total = first + second
            per_wheel = SCALE * np.where(total > 0, 2 * first * second / np.where(total > 0, total, 1), 0.0)
            per_wheel = np.where(denominator > 0, per_wheel, np.nan)
    return per_wheel.mean(axis=-1)


def paired_drop(kind: str, full: Sequence[Labels], masked: Sequence[Labels], labels: Sequence[Labels | float],
                wheels: EmotionWheels | None, idx: np.ndarray, chunk: int = 100) -> tuple[float, np.ndarray]:
    """metric(full) − metric(masked) on the same clips, and the same difference on every row of the resampling
    matrix `idx` where the metric is defined (a resample that scores no clip says nothing and is left out);
    computed `chunk` rows at a time so memory stays bounded on large sets."""
    a, b = clip_shares(kind, full, labels, wheels), clip_shares(kind, masked, labels, wheels)
    every = np.arange(len(labels))
    boot = np.concatenate([metric_on(a, idx[i:i + chunk]) - metric_on(b, idx[i:i + chunk])
                           for i in range(0, len(idx), chunk)] or [np.empty(0)])
    return float(metric_on(a, every) - metric_on(b, every)), boot[np.isfinite(boot)]
