"""Numbers as the report shows them: every score on the 0–100 scale with its 95% CI and sample count."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

LABELS = {
    "accuracy": "Accuracy", "macro_f1": "Macro-F1", "mean": "Mean",
    "utilization_recall": "Utilization recall", "acc_at_v": "Acc@V (TNR-masked)", "acc_at_a": "Acc@A (TNR-masked)",
    "balanced_faithfulness_v": "Balanced-masked@V", "balanced_faithfulness_a": "Balanced-masked@A",
    "pf_v": "PF@V", "pf_a": "PF@A", "control_acc_v": "TPR V", "control_acc_a": "TPR A",
    "tnr_absent_v": "TNR-absent V", "tnr_absent_a": "TNR-absent A",
    "grounded_recall_video": "Grounded util V", "grounded_recall_audio": "Grounded util A",
    "claim_rate_v": "Claims under −V ↓", "claim_rate_a": "Claims under −A ↓",
}


@dataclass(frozen=True)
class Cell:
    """A score on the 0–100 scale, with its CI when known and the count it rests on."""

    value: float | None
    low: float | None = None
    high: float | None = None
    n: int | None = None
    note: str = ""
    digits: int = 2

    @property
    def has_ci(self) -> bool:
        """True when both CI bounds are known."""
        return self.low is not None and self.high is not None


def finite(value: Any) -> float | None:
    """`value` as a float, or None when missing or NaN."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def estimate_cell(estimate: Any, factor: float = 100.0, n: int | None = None) -> Cell:
    """A Cell from an estimate dict (`value`, optional `ci_low`/`ci_high`) or a bare number, times `factor`."""
    if not isinstance(estimate, dict):
        value = finite(estimate)
        return Cell(None if value is None else value * factor, n=n)
    scaled = [finite(estimate.get(k)) for k in ("value", "ci_low", "ci_high")]
    value, low, high = (None if v is None else v * factor for v in scaled)
    return Cell(value, low, high, n)


def label(metric: str) -> str:
    """Display name of a metric key."""
    return LABELS.get(metric, metric)


def fmt(value: float | None, digits: int = 2) -> str:
    """A number with `digits` decimals, or an em dash when missing."""
    return "—" if value is None else f"{value:.{digits}f}"
