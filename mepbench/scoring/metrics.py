"""Classification metrics that evaluate on many bootstrap resamples at once, and the 95% intervals: Wilson score
intervals for proportions, BCa and percentile bootstraps for other metrics, paired percentile bootstraps for
differences.

Each metric maps integer-coded arrays `(…, n)` of truths and predictions to `(…)` scores; a
prediction of -1 (unparsed) is wrong for every class. Scores are fractions in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from statistics import NormalDist
from typing import Callable

import numpy as np

MetricFn = Callable[[np.ndarray, np.ndarray, int], np.ndarray]


def accuracy(t: np.ndarray, p: np.ndarray, n_classes: int) -> np.ndarray:
    """Fraction of exact matches."""
    return (t == p).mean(axis=-1)


def _per_class_f1(t: np.ndarray, p: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    f1s, support = [], []
    for c in range(n_classes):
        tc, pc = t == c, p == c
        tp = (tc & pc).sum(axis=-1)
        denom = tc.sum(axis=-1) + pc.sum(axis=-1)
        f1s.append(np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0))
        support.append(tc.sum(axis=-1))
    return np.stack(f1s, axis=-1), np.stack(support, axis=-1)


def macro_f1(t: np.ndarray, p: np.ndarray, n_classes: int) -> np.ndarray:
    """Unweighted mean of per-class F1 over classes present in the truths (sklearn's `average='macro'`
    restricted to the label set; absent classes that are also never predicted are skipped)."""
    f1, support = _per_class_f1(t, p, n_classes)
    predicted = np.stack([(p == c).sum(axis=-1) for c in range(n_classes)], axis=-1)
    present = (support > 0) | (predicted > 0)
    return (f1 * present).sum(axis=-1) / np.maximum(present.sum(axis=-1), 1)


def weighted_f1(t: np.ndarray, p: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-class F1 weighted by true support (sklearn's `average='weighted'`)."""
    f1, support = _per_class_f1(t, p, n_classes)
    return (f1 * support).sum(axis=-1) / np.maximum(support.sum(axis=-1), 1)


METRICS: dict[str, MetricFn] = {"accuracy": accuracy, "macro_f1": macro_f1, "weighted_f1": weighted_f1}


PERCENTILE = "percentile-bootstrap"
PAIRED = "paired-percentile-bootstrap"
WILSON = "wilson"
BCA = "bca-bootstrap"
Z95 = NormalDist().inv_cdf(0.975)
SMALL_N = 30  # below this many units a bootstrap interval undercovers; the estimate says so


@dataclass(frozen=True)
class Estimate:
    """A point value with a 95% interval, the number of units it rests on and how the interval was made."""

    value: float
    ci_low: float
    ci_high: float
    n: int | None = None
    method: str | None = None
    warning: str | None = None

    def to_dict(self) -> dict[str, float | int | str | None]:
        """JSON form (`warning` only when there is one)."""
        out = {"value": self.value, "ci_low": self.ci_low, "ci_high": self.ci_high, "n": self.n, "method": self.method}
        return {**out, "warning": self.warning} if self.warning else out


def small_n_warning(n: int | None, method: str | None) -> str | None:
    """The caveat of a bootstrap interval over fewer than `SMALL_N` units (None otherwise)."""
    if n is not None and 0 < n < SMALL_N and method not in (None, "none", WILSON):
        return f"n = {n} < {SMALL_N}: a bootstrap interval this small undercovers; read it as rough"
    return None


def wilson(successes: float, n: int, z: float = Z95) -> Estimate:
    """A proportion `successes / n` with its Wilson score interval (inside [0, 1] and sensible at 0 and n, unlike
    the percentile bootstrap, which collapses to a point there)."""
    if n <= 0:
        return undefined()
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return Estimate(float(p), float(max(0.0, centre - half)), float(min(1.0, centre + half)), n, WILSON)


def undefined(n: int = 0) -> Estimate:
    """The estimate of an empty input: NaN everywhere."""
    return Estimate(float("nan"), float("nan"), float("nan"), n, None)


def bootstrap_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """A (resamples, n) matrix of sample indices drawn with replacement."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def _estimate(value: float, boot: np.ndarray, n: int | None, method: str = PERCENTILE) -> Estimate:
    """`value` with the 2.5–97.5 percentiles of its replicates (no interval, method `none`, without replicates)."""
    if not boot.size:
        return Estimate(float(value), float(value), float(value), n, "none")
    low, high = np.percentile(boot, [2.5, 97.5])
    return Estimate(float(value), float(low), float(high), n, method, small_n_warning(n, method))


def bca_estimate(value: float, boot: np.ndarray, jack: np.ndarray, n: int) -> Estimate:
    """`value` with the bias-corrected and accelerated interval of its bootstrap replicates `boot` (Efron 1987):
    the bias z0 from the share of replicates below `value`, the acceleration from the jackknife values `jack` (one
    per left-out group). Falls back to the percentile interval when the replicates do not straddle `value` or the
    jackknife is flat."""
    boot = np.asarray(boot, dtype=float)
    jack = np.asarray(jack, dtype=float)
    jack = jack[np.isfinite(jack)]
    if not boot.size:
        return _estimate(value, boot, n)
    below = (np.sum(boot < value) + 0.5 * np.sum(boot == value)) / boot.size
    spread = jack.mean() - jack if jack.size > 1 else np.zeros(1)
    denominator = 6 * float(np.sum(spread ** 2)) ** 1.5
    if not 0 < below < 1 or denominator == 0:
        return replace(_estimate(value, boot, n), method=PERCENTILE)
    normal = NormalDist()
    z0 = normal.inv_cdf(below)
    a = float(np.sum(spread ** 3)) / denominator
    levels = []
    for z in (-Z95, Z95):
        shifted = z0 + (z0 + z) / (1 - a * (z0 + z))
        levels.append(100 * normal.cdf(shifted))
    low, high = np.percentile(boot, levels)
    return Estimate(float(value), float(low), float(high), n, BCA, small_n_warning(n, BCA))


def score(name: str, truth: np.ndarray, pred: np.ndarray, n_classes: int, idx: np.ndarray) -> Estimate:
    """Metric `name` on (truth, pred) with a CI from the resampling matrix `idx`."""
    fn = METRICS[name]
    if truth.size == 0:
        return undefined()
    return _estimate(fn(truth, pred, n_classes), fn(truth[idx], pred[idx], n_classes), int(truth.size))


def paired_drop(name: str, truth: np.ndarray, full: np.ndarray, masked: np.ndarray, n_classes: int,
                idx: np.ndarray) -> Estimate:
    """Metric(full) − metric(masked) on the same samples, CI from paired resamples (reliance)."""
    fn = METRICS[name]
    if truth.size == 0:
        return undefined()
    value = fn(truth, full, n_classes) - fn(truth, masked, n_classes)
    boot = fn(truth[idx], full[idx], n_classes) - fn(truth[idx], masked[idx], n_classes)
    return _estimate(value, boot, int(truth.size), PAIRED)


def flip_rate(full: np.ndarray, masked: np.ndarray, idx: np.ndarray) -> Estimate:
    """Fraction of samples whose prediction changes when a modality is masked."""
    if full.size == 0:
        return undefined()
    flips = (full != masked).astype(float)
    return _estimate(flips.mean(), flips[idx].mean(axis=-1), int(full.size), PAIRED)


def mean_estimate(values: np.ndarray, resamples: int = 1000, seed: int = 0, method: str = PERCENTILE) -> Estimate:
    """Mean of per-sample scores (a macro average) with a percentile-bootstrap CI; empty input gives NaN. `method`
    names the design (`PAIRED` when the values are per-sample differences)."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return undefined()
    idx = bootstrap_indices(values.size, resamples, seed)
    return _estimate(values.mean(), values[idx].mean(axis=-1), int(values.size), method)


def bootstrap_estimate(value: float, boot: np.ndarray, n: int | None = None, method: str = PERCENTILE) -> Estimate:
    """A point value with the 95% percentile interval of its bootstrap replicates `boot` over `n` units."""
    return _estimate(value, np.asarray(boot, dtype=float), n, method)
