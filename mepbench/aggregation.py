"""From scored rows to a task's results, the same way for every task: each variant's metrics with 95% intervals
(Wilson for proportions, BCa bootstrap for the rest), then reliance (the paired drop of each declared metric, with a
paired bootstrap interval, and the prediction flip rate of every masked variant against `full`, Wilson, over the
samples both share), then the task's own blocks.

A task declares its metrics as `PairedMetric`s (per-sample units and a vectorised metric over resampled units) and
what it adds per variant and per task; it never re-implements this loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from mepbench.masking import FULL
from mepbench.records import ESTIMATE_KEYS
from mepbench.scoring import metrics as M

Row = dict[str, Any]
CHUNK = 100  # resamples evaluated at once, so memory stays bounded on large sets
JACKKNIFE_GROUPS = 100  # the BCa acceleration comes from a delete-a-group jackknife over at most this many groups


@dataclass(frozen=True)
class PairedMetric:
    """A metric that can be resampled: `units(rows)` encodes one unit per row (any array-like indexable along its
    last axis), `on(units, idx)` is the metric on the units selected by `idx` (shape (..., n) → (...)), NaN where
    it is undefined. A `proportion` (the share of rows that succeed, such as accuracy) gets a Wilson interval; any
    other metric a BCa bootstrap."""

    name: str
    units: Callable[[list[Row]], Any]
    on: Callable[[Any, np.ndarray], np.ndarray]
    proportion: bool = False

    def replicates(self, units: Any, idx: np.ndarray) -> np.ndarray:
        """The metric on each row of `idx`, `CHUNK` rows at a time."""
        parts = [np.asarray(self.on(units, idx[i:i + CHUNK]), dtype=float) for i in range(0, len(idx), CHUNK)]
        return np.concatenate(parts) if parts else np.empty(0)


class MetricTask(Protocol):
    """What the aggregation reads from a task (`mepbench.tasks.base.Task` provides defaults for all of it)."""

    scale: float

    def paired_metrics(self) -> list[PairedMetric]: ...

    def prediction(self, row: Row) -> Any: ...

    def variant_details(self, rows: list[Row], resamples: int, seed: int) -> dict[str, Any]: ...

    def task_details(self, rows: list[Row], results: dict[str, Any], resamples: int, seed: int) -> dict[str, Any]: ...


def jackknife(metric: PairedMetric, units: Any, n: int) -> np.ndarray:
    """The metric with each of up to `JACKKNIFE_GROUPS` groups of rows left out (row i is in group i mod G)."""
    groups = min(n, JACKKNIFE_GROUPS)
    if groups < 2:
        return np.empty(0)
    member = np.arange(n) % groups
    return np.array([float(np.asarray(metric.on(units, np.flatnonzero(member != g)[None, :]))[0])
                     for g in range(groups)])


def estimate(metric: PairedMetric, rows: list[Row], resamples: int, seed: int) -> M.Estimate:
    """`metric` on `rows` with its 95% interval: Wilson for a proportion, else BCa over bootstrap resamples of the
    rows (resamples where the metric is undefined are left out)."""
    n = len(rows)
    if n == 0:
        return M.undefined()
    units = metric.units(rows)
    value = float(metric.on(units, np.arange(n)))
    if metric.proportion:
        return M.wilson(round(value * n), n)
    if resamples <= 0:
        return M.bootstrap_estimate(value, np.empty(0), n)
    boot = metric.replicates(units, M.bootstrap_indices(n, resamples, seed))
    return M.bca_estimate(value, boot[np.isfinite(boot)], jackknife(metric, units, n), n)


def paired(full: list[Row], masked: list[Row], metrics: Sequence[PairedMetric], prediction: Callable[[Row], Any],
           resamples: int, seed: int) -> dict[str, Any]:
    """Reliance of one masked variant: metric(full) − metric(masked) for each metric and the rate at which the
    prediction changes, over rows paired by position, the same resamples applied to both sides."""
    n = len(full)
    if n == 0:
        return {"n": 0, "drop": {m.name: M.undefined().to_dict() for m in metrics},
                "flip_rate": M.undefined().to_dict()}
    idx, every = M.bootstrap_indices(n, resamples, seed), np.arange(n)
    drop = {}
    for metric in metrics:
        a, b = metric.units(full), metric.units(masked)
        value = float(metric.on(a, every) - metric.on(b, every))
        boot = metric.replicates(a, idx) - metric.replicates(b, idx)
        drop[metric.name] = M.bootstrap_estimate(value, boot[np.isfinite(boot)], n, M.PAIRED).to_dict()
    flips = np.array([prediction(f) != prediction(m) for f, m in zip(full, masked)], dtype=float)
    flip_rate = M.wilson(float(flips.sum()), n)
    return {"n": n, "drop": drop, "flip_rate": flip_rate.to_dict()}


def task_results(task: MetricTask, rows: list[Row], resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """The results block of one task: `variants` (n, failed, metrics with intervals, and the task's
    `variant_details`, whose `metrics` fields override the computed ones), `reliance` against `full`, `scale`, and
    the task's `task_details`."""
    by_variant: dict[str, dict[str, Row]] = {}
    for row in rows:
        if not row.get("item"):
            by_variant.setdefault(row["variant"], {})[row["sample_id"]] = row
    metrics = task.paired_metrics()
    out: dict[str, Any] = {"variants": {}, "reliance": {}, "scale": task.scale}
    for variant, cells in by_variant.items():
        chosen = list(cells.values())
        details = task.variant_details(chosen, resamples, seed)
        given = details.pop("metrics", {})  # the task's own fields win; a complete estimate is not recomputed
        computed = {m.name: estimate(m, chosen, resamples, seed).to_dict() for m in metrics
                    if not ESTIMATE_KEYS <= given.get(m.name, {}).keys()}
        block = {"n": len(chosen), "failed": sum(1 for r in chosen if r.get("error")),
                 "metrics": {**computed, **{k: {**computed.get(k, {}), **v} for k, v in given.items()}}}
        out["variants"][variant] = {**block, **details}
    full = by_variant.get(FULL.name, {})
    for variant, cells in by_variant.items():
        if variant != FULL.name and full:
            shared = sorted(set(cells) & set(full))
            out["reliance"][variant] = paired([full[i] for i in shared], [cells[i] for i in shared], metrics,
                                              task.prediction, resamples, seed)
    out.update(task.task_details(rows, out, resamples, seed))
    return out
