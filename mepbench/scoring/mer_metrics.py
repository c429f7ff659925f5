"""MER-UniBench metrics exactly as published (benchmarks.md §1.4; upstream AffectGPT `evaluation.py`,
`my_affectgpt/evaluation/wheel.py`): HIT, WAF/ACC, Fs/Precision_s/Recall_s, best-of-checkpoints selection.

All scores are on the paper's 0–100 scale (Table 2 / Table 12 print ×100); NaN when nothing is scorable.
Predictions and labels are open-set list strings ("[calm, confident]") or already-split word lists.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from mepbench.scoring.metrics import accuracy, weighted_f1
from mepbench.scoring.wheel import N_WHEELS, EmotionWheels, split_label_list

Labels = str | Sequence[str]
SCALE = 100.0
NONE_COLUMN = "(none)"
SENTIMENT_VALUES = {"positive": 1, "negative": -1, "neutral": 0}
KINDS = ("hit", "sentiment", "openset")
PRIMARY_METRIC = {"hit": "HIT", "sentiment": "WAF", "openset": "Fs"}


def parse_openset(text: Labels) -> list[str]:
    """Words of an extracted list string, lower-cased and stripped (upstream `string_to_list` + `.lower().strip()`)."""
    items = split_label_list(text) if isinstance(text, str) or text is None else list(text)
    return [str(w).lower().strip() for w in items]


def parse_sentiment(text: str | int) -> int:
    """+1 / −1 / 0 for exactly 'positive' / 'negative' / 'neutral'; anything else (e.g. 'mixed', 'Positive.')
    is 0, as upstream `calculate_dimension_zeroshot` does (benchmarks.md §1.2 step 3)."""
    if isinstance(text, (int, np.integer)):
        return int(np.sign(text))
    return SENTIMENT_VALUES.get(str(text), 0)


@dataclass(frozen=True)
class HitScore:
    """HIT (0–100) = mean over the 5 wheels of the per-wheel hit rate on clips whose label maps to a sector."""

    hit: float
    per_wheel: tuple[float, ...]
    n_scored: tuple[int, ...]

    def to_dict(self) -> dict[str, object]:
        """JSON form."""
        return asdict(self)


@dataclass(frozen=True)
class SentimentScore:
    """WAF (primary) and ACC (0–100) on the clips with a non-zero label."""

    waf: float
    acc: float
    n_scored: int
    n_zero_dropped: int

    def to_dict(self) -> dict[str, object]:
        """JSON form."""
        return asdict(self)


@dataclass(frozen=True)
class OpenSetScore:
    """Fs, Precision_s, Recall_s (0–100): per wheel, dataset-level P and R and F = 2PR/(P+R); averaged over wheels."""

    fs: float
    precision: float
    recall: float
    per_wheel: tuple[tuple[float, float, float], ...]
    n_scored: tuple[int, ...]

    def to_dict(self) -> dict[str, object]:
        """JSON form (per_wheel rows are (F, P, R))."""
        return asdict(self)


@dataclass(frozen=True)
class Confusion:
    """Clip counts: row = true class, column = predicted class (a secondary, diagnostic output)."""

    rows: tuple[str, ...]
    columns: tuple[str, ...]
    counts: tuple[tuple[int, ...], ...]

    def to_dict(self) -> dict[str, object]:
        """JSON form."""
        return {"rows": list(self.rows), "columns": list(self.columns), "counts": [list(r) for r in self.counts]}


def map_to_wheels(items: Sequence[Labels], wheels: EmotionWheels) -> list[tuple[frozenset[str], ...]]:
    """Each item (an extracted list string or a list of labels) as its level-1 sector set in every wheel."""
    return [wheels.map_text(item) if isinstance(item, str) else wheels.map_all(parse_openset(item)) for item in items]


def _check_lengths(predictions: Sequence[object], labels: Sequence[object]) -> None:
    if len(predictions) != len(labels):
        raise ValueError(f"{len(predictions)} predictions for {len(labels)} labels")


def hit_rate(predictions: Sequence[Labels], labels: Sequence[Labels], wheels: EmotionWheels) -> HitScore:
    """HIT for the basic-emotion sets (upstream `calculate_openset_onehot_hitrate`): per wheel, clips whose label
    maps to nothing (neutral; W5 surprise; W3/W5 disgust) leave the denominator; a clip scores |pred ∩ label|."""
    _check_lengths(predictions, labels)
    preds, golds = map_to_wheels(predictions, wheels), map_to_wheels(labels, wheels)
    per_wheel, counts = [], []
    for k in range(N_WHEELS):
        scores = [len(p[k] & g[k]) for p, g in zip(preds, golds) if g[k]]
        per_wheel.append(SCALE * sum(scores) / len(scores) if scores else math.nan)
        counts.append(len(scores))
    return HitScore(float(np.mean(per_wheel)), tuple(per_wheel), tuple(counts))


def sentiment_scores(predictions: Sequence[str | int], values: Sequence[float]) -> SentimentScore:
    """WAF and ACC for the sentiment sets (upstream `calculate_dimension_zeroshot`): label-0 clips are removed,
    truth = value > 0, prediction = parsed sentiment > 0, so neutral and unparseable answers count as negative.
    WAF is sklearn's weighted F1, the same definition as `mepbench.scoring.metrics.weighted_f1`."""
    _check_lengths(predictions, values)
    vals = np.asarray(values, dtype=float)
    pred = np.array([parse_sentiment(p) for p in predictions], dtype=int)
    keep = vals != 0
    if not keep.any():
        return SentimentScore(math.nan, math.nan, 0, int(vals.size))
    truth, guess = (vals[keep] > 0).astype(int), (pred[keep] > 0).astype(int)
    return SentimentScore(SCALE * float(weighted_f1(truth, guess, 2)), SCALE * float(accuracy(truth, guess, 2)),
                          int(keep.sum()), int((~keep).sum()))


def openset_scores(predictions: Sequence[Labels], labels: Sequence[Labels], wheels: EmotionWheels) -> OpenSetScore:
    """Fs / Precision_s / Recall_s for OV-MERD+ (upstream `wheel_metric_calculation`, level 1): per wheel, over clips
    whose label set maps to something, P = mean |∩|/|pred| and R = mean |∩|/|label| (empty prediction: 0 and 0),
    F = 2PR/(P+R) from those dataset-level P and R (not a mean of per-clip F). Where P + R = 0 upstream divides
    0/0 into NaN; F is 0 here."""
    _check_lengths(predictions, labels)
    preds, golds = map_to_wheels(predictions, wheels), map_to_wheels(labels, wheels)
    per_wheel, counts = [], []
    for k in range(N_WHEELS):
        prec, rec = [], []
        for p, g in zip(preds, golds):
            if not g[k]:
                continue
            hits = len(p[k] & g[k])
            prec.append(hits / len(p[k]) if p[k] else 0.0)
            rec.append(hits / len(g[k]) if p[k] else 0.0)
        if prec:
            pk, rk = float(np.mean(prec)), float(np.mean(rec))
            fk = 2 * pk * rk / (pk + rk) if pk + rk > 0 else 0.0
        else:
            pk = rk = fk = math.nan
        per_wheel.append((SCALE * fk, SCALE * pk, SCALE * rk))
        counts.append(len(prec))
    fs, p, r = (float(x) for x in np.mean(per_wheel, axis=0))
    return OpenSetScore(fs, p, r, tuple(per_wheel), tuple(counts))


def sector_confusion(predictions: Sequence[Labels], labels: Sequence[Labels], wheels: EmotionWheels, wheel: int,
                     by_label: bool = True) -> Confusion:
    """Per-class co-occurrence in wheel `wheel` (1..5): rows are the dataset's label strings (`by_label`) or the
    label's sectors, columns the predicted sectors plus "(none)"; a clip counts once in every (row, column) pair
    it has, so a multi-word prediction adds to several columns."""
    _check_lengths(predictions, labels)
    columns = (*wheels.sectors[wheel - 1], NONE_COLUMN)
    table: dict[str, list[int]] = {}
    for pred, label, gold in zip(predictions, labels, map_to_wheels(labels, wheels)):
        guessed = map_to_wheels([pred], wheels)[0][wheel - 1] or {NONE_COLUMN}
        keys = {", ".join(parse_openset(label))} if by_label else set(gold[wheel - 1]) or {NONE_COLUMN}
        for key in keys:
            row = table.setdefault(key, [0] * len(columns))
            for sector in guessed:
                row[columns.index(sector)] += 1
    rows = tuple(sorted(table))
    return Confusion(rows, columns, tuple(tuple(table[r]) for r in rows))


def sentiment_confusion(predictions: Sequence[str | int], values: Sequence[float]) -> Confusion:
    """Truth (negative / positive, label-0 clips removed) against the parsed answer (negative / neutral or
    unparseable / positive); the middle column is what the protocol scores as negative."""
    _check_lengths(predictions, values)
    columns = ("negative", "neutral_or_unparsed", "positive")
    counts = [[0, 0, 0], [0, 0, 0]]
    for pred, value in zip(predictions, values):
        if value != 0:
            counts[int(value > 0)][parse_sentiment(pred) + 1] += 1
    return Confusion(("negative", "positive"), columns, tuple(tuple(r) for r in counts))


def select_checkpoint(primary: Mapping[str, float], select: str = "best") -> str:
    """The checkpoint to report. `best`: upstream `main_zeroshot_scores` rule, the first maximum of the primary
    metric over checkpoints in sorted-name order (NaN never wins); `last`: the last in sorted-name order; otherwise
    a checkpoint name, or an epoch number matching AffectGPT's `checkpoint_<epoch>_…` names."""
    if not primary:
        raise ValueError("no checkpoints to select from")
    names = sorted(primary)
    if select == "best":
        finite = [n for n in names if not math.isnan(primary[n])]
        return max(finite, key=lambda n: primary[n]) if finite else names[0]
    if select == "last":
        return names[-1]
    if select in primary:
        return select
    if select.isdigit():
        matches = [n for n in names if len(n.split("_")) > 1 and n.split("_")[1].isdigit()
                   and int(n.split("_")[1]) == int(select)]
        if len(matches) == 1:
            return matches[0]
    raise ValueError(f"checkpoint {select!r} not found; choose best, last, or one of {names}")


def _aligned(names: Sequence[str], predictions: Mapping[str, str], source: str) -> list[str]:
    missing = [n for n in names if n not in predictions]
    if missing:
        raise ValueError(f"{source}: no prediction for {len(missing)} of {len(names)} labelled clips "
                         f"(e.g. {missing[:3]})")
    return [predictions[n] for n in names]


def score_checkpoint(kind: str, labels: Mapping[str, Labels | float], wheels: EmotionWheels | None = None,
                     openset: Mapping[str, str] | None = None, sentiment: Mapping[str, str] | None = None,
                     source: str = "predictions", with_confusion: bool = False) -> dict[str, Any]:
    """Score one checkpoint's extraction caches against name-keyed labels; `kind` is hit | sentiment | openset.
    Every labelled clip needs a prediction (upstream fails on a missing one too); extra predictions are ignored.
    Returns {"primary", the metric's fields[, "confusion"]}; `source` names the cache in error messages."""
    names = list(labels)
    if kind == "sentiment":
        if sentiment is None:
            raise ValueError(f"{source}: the sentiment cache is required for sentiment datasets")
        preds = _aligned(names, sentiment, source)
        vals = [float(labels[n]) for n in names]
        score = sentiment_scores(preds, vals)
        out: dict[str, Any] = {"primary": score.waf, **score.to_dict()}
        if with_confusion:
            out["confusion"] = sentiment_confusion(preds, vals).to_dict()
        return out
    if kind not in KINDS:
        raise ValueError(f"unknown MER-UniBench metric kind {kind!r}; expected one of {KINDS}")
    if openset is None or wheels is None:
        raise ValueError(f"{source}: open-set predictions and the emotion wheels are required for {kind}")
    preds = _aligned(names, openset, source)
    golds = [labels[n] for n in names]
    if kind == "hit":
        hit = hit_rate(preds, golds, wheels)
        out = {"primary": hit.hit, **hit.to_dict()}
    else:
        ov = openset_scores(preds, golds, wheels)
        out = {"primary": ov.fs, **ov.to_dict()}
    if with_confusion:
        out["confusion"] = {f"wheel{k}": sector_confusion(preds, golds, wheels, k, by_label=kind == "hit").to_dict()
                            for k in range(1, N_WHEELS + 1)}
    return out
