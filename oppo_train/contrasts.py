"""Pre-registered paired contrasts of the mini reproduction: every row of a seed is evaluated on the same eval
clips from the same SFT checkpoint, so each contrast is a per-seed difference; its mean gets a t interval over
seeds (clipped to the difference's range), a two-sided paired t-test, and Holm's correction over the whole family
of contrasts × primary metrics. A claim is supported only when its corrected p-value is below alpha in the
claimed direction."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

SUPPORTED, CONTRADICTED, INCONCLUSIVE = "supported", "contradicted", "inconclusive"


@dataclass(frozen=True)
class Primary:
    """A primary metric: its leaderboard key, whether higher is better, and the range of its values."""

    key: str
    higher_is_better: bool = True
    low: float = 0.0
    high: float = 1.0


# The pre-registered primaries (leaderboards/mini-repro/PREREGISTRATION.md). Grounded recall is a difference of two
# recalls, so it lies in [-1, 1]; a claim rate is better when lower.
PRIMARY: tuple[Primary, ...] = (
    Primary("grounded_v", low=-1.0), Primary("grounded_a", low=-1.0), Primary("pf_v"), Primary("pf_a"),
    Primary("claims_v", higher_is_better=False), Primary("claims_a", higher_is_better=False), Primary("accuracy"),
)
PRIMARY_BY_KEY = {p.key: p for p in PRIMARY}


def t_interval(values: list[float], low: float, high: float, level: float = 0.95) -> tuple[float, float] | None:
    """The t interval of the mean of `values`, intersected with [low, high] (None for fewer than two values)."""
    n = len(values)
    if n < 2:
        return None
    from scipy import stats

    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return max(low, mean - half), min(high, mean + half)


def paired_t_p(diffs: list[float]) -> float | None:
    """Two-sided p-value of a paired t-test that the mean difference is zero (None for fewer than two seeds; 0 or 1
    when every difference is equal, nonzero or zero)."""
    n = len(diffs)
    if n < 2:
        return None
    mean = sum(diffs) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    if sd == 0.0:
        return 1.0 if mean == 0.0 else 0.0
    from scipy import stats

    return float(2 * stats.t.sf(abs(mean) / (sd / math.sqrt(n)), n - 1))


def holm(pvalues: dict[Any, float | None]) -> dict[Any, float | None]:
    """Holm's step-down adjusted p-values (monotone, capped at 1); None stays None and does not count."""
    known = sorted(((p, key) for key, p in pvalues.items() if p is not None), key=lambda item: item[0])
    m, running, out = len(known), 0.0, {key: None for key in pvalues}
    for rank, (p, key) in enumerate(known):
        running = max(running, min(1.0, (m - rank) * p))
        out[key] = running
    return out


def verdict(mean: float, p_adjusted: float | None, higher_is_better: bool, alpha: float = 0.05) -> str:
    """supported / contradicted when the corrected p-value is below alpha (by the sign of the difference against
    the claimed direction), else inconclusive."""
    if p_adjusted is None or p_adjusted >= alpha or mean == 0.0:
        return INCONCLUSIVE
    return SUPPORTED if (mean > 0) == higher_is_better else CONTRADICTED


def paired_contrasts(per_seed: dict[int, dict[str, dict[str, Any]]], contrasts: list[tuple[str, str]],
                     primaries: tuple[Primary, ...] = PRIMARY, alpha: float = 0.05) -> list[dict[str, Any]]:
    """One entry per (contrast, primary metric): the per-seed differences (first row minus second, seeds where both
    have the value), their mean, interval, raw and Holm-corrected p-value and the verdict."""
    entries = []
    for treated, control in contrasts:
        for primary in primaries:
            seeds, diffs = [], []
            for seed, rows in per_seed.items():
                a = rows.get(treated, {}).get("values", {}).get(primary.key)
                b = rows.get(control, {}).get("values", {}).get(primary.key)
                if a is not None and b is not None:
                    seeds.append(seed)
                    diffs.append(a - b)
            span = primary.high - primary.low
            mean = sum(diffs) / len(diffs) if diffs else None
            entries.append({"treated": treated, "control": control, "metric": primary.key, "seeds": seeds,
                            "diffs": diffs, "n_seeds": len(diffs), "mean": mean,
                            "ci": t_interval(diffs, -span, span), "p": paired_t_p(diffs),
                            "higher_is_better": primary.higher_is_better})
    adjusted = holm({i: e["p"] for i, e in enumerate(entries)})
    for i, entry in enumerate(entries):
        entry["p_holm"] = adjusted[i]
        entry["verdict"] = (INCONCLUSIVE if entry["mean"] is None
                            else verdict(entry["mean"], adjusted[i], entry["higher_is_better"], alpha))
    return entries
