"""Calibrating the cue-matching threshold τ of an embedder on mep-synth's exact cue truth.

τ = 0.6 is the OPPO authors' value for Qwen3-Embedding; cosine scales differ between embedders, so another
embedder needs its own τ. The calibration set is exact: every mep-synth visual and acoustic cue paired with its
paraphrases (the surface forms of the cue lexicon: "furrowed brows" ~ "knitted brows") as positives and with every
other cue of the same modality, and their paraphrases, as negatives ("furrowed brows" vs "raised eyebrows",
"high pitch" vs "low pitch"). At each τ: paraphrase recall (the share of positive pairs with cosine ≥ τ) and
other-cue rejection (the share of negative pairs below τ).

With a reference embedder and its τ, the chosen τ is the one whose (recall, rejection) is closest (L1) to the
reference's operating point, i.e. the same matching behaviour; without one, the τ that maximises their mean
(balanced accuracy, Youden's J). Ties go to the higher τ (fewer false matches).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mepbench.scoring.embedding import Embedder

TAUS = tuple(round(0.2 + 0.01 * k, 2) for k in range(76))  # 0.20 … 0.95
Pair = tuple[str, str]


def calibration_pairs() -> tuple[list[Pair], list[Pair]]:
    """(positives, negatives) from mep-synth's cue vocabulary and the lexicon's paraphrases of each cue."""
    from mepbench.scoring.cues import DEFAULT_LEXICON
    from mepbench.scoring.vocabulary import VOCABULARY

    positives, negatives = [], []
    for modality, vocabulary in VOCABULARY.items():
        forms = {cue: (cue, *DEFAULT_LEXICON[modality][cue]) for cue in vocabulary}
        for cue in vocabulary:
            positives += [(cue, form) for form in forms[cue][1:]]
            negatives += [(cue, form) for other in vocabulary if other != cue for form in forms[other]]
    return positives, negatives


@dataclass(frozen=True)
class OperatingPoint:
    """Paraphrase recall and other-cue rejection at one τ."""

    tau: float
    recall: float
    rejection: float

    @property
    def balanced(self) -> float:
        """Their mean (balanced accuracy)."""
        return (self.recall + self.rejection) / 2


def operating_points(embedder: Embedder, positives: Sequence[Pair], negatives: Sequence[Pair],
                     taus: Sequence[float] = TAUS) -> list[OperatingPoint]:
    """Recall and rejection of `embedder` at every τ (each unique text encoded once)."""
    texts = sorted({t for pair in (*positives, *negatives) for t in pair})
    vectors = dict(zip(texts, embedder.encode(texts)))

    def cosines(pairs: Sequence[Pair]) -> np.ndarray:
        return np.array([float(vectors[a] @ vectors[b]) for a, b in pairs])

    pos, neg = cosines(positives), cosines(negatives)
    return [OperatingPoint(float(t), float((pos >= t).mean()), float((neg < t).mean())) for t in taus]


def best_balanced(points: Sequence[OperatingPoint]) -> OperatingPoint:
    """The point of maximal balanced accuracy (the highest τ among ties)."""
    return max(points, key=lambda p: (round(p.balanced, 9), p.tau))


def closest(points: Sequence[OperatingPoint], target: OperatingPoint) -> OperatingPoint:
    """The point whose recall and rejection are nearest `target`'s (L1; the highest τ among ties)."""
    return min(points, key=lambda p: (round(abs(p.recall - target.recall) + abs(p.rejection - target.rejection), 9),
                                      -p.tau))


@dataclass
class Calibration:
    """The chosen τ of an embedder, how it was chosen, and the whole curve."""

    embedder: str
    tau: float
    method: str
    point: OperatingPoint
    n_positive: int
    n_negative: int
    reference: dict[str, Any] | None = None
    curve: list[OperatingPoint] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the curve as rows of τ, recall, rejection)."""
        return {"embedder": self.embedder, "tau": self.tau, "method": self.method,
                "paraphrase_recall": self.point.recall, "other_cue_rejection": self.point.rejection,
                "n_positive_pairs": self.n_positive, "n_negative_pairs": self.n_negative, "reference": self.reference,
                "curve": [[p.tau, p.recall, p.rejection] for p in self.curve]}


def calibrate(embedder: Embedder, reference: Embedder | None = None, reference_tau: float = 0.6) -> Calibration:
    """τ for `embedder`: matching `reference` at `reference_tau` when given, else maximal balanced accuracy."""
    positives, negatives = calibration_pairs()
    curve = operating_points(embedder, positives, negatives)
    if reference is None:
        point, method, ref = best_balanced(curve), "max balanced accuracy (Youden's J)", None
    else:
        target = operating_points(reference, positives, negatives, [reference_tau])[0]
        point = closest(curve, target)
        method = f"closest operating point to {reference.name} at tau={reference_tau}"
        ref = {"embedder": reference.name, "tau": reference_tau, "paraphrase_recall": target.recall,
               "other_cue_rejection": target.rejection}
    return Calibration(embedder.name, point.tau, method, point, len(positives), len(negatives), ref, curve)
