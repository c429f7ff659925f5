"""MEP-style tasks: emotion accuracy and reliance, utilization (cue recall), grounded utilization, claims under
masking and the three-part faithfulness probes.

Protocol (OPPO paper §2.2, built model-independently): the main question is asked under every variant;
utilization compares the cues extracted from the full-input reasoning with the sample's reference cues
(same modality, cosine ≥ τ), and grounded utilization subtracts the recall of the reasoning written with that
modality masked; the cues that masked reasoning claims for the masked modality are hallucinated claims. For each of
video and audio, the first `probes_per_modality` reference cues (at least `probe_min_chars` long) become yes/no
probes asked with that modality masked (expected "no", Acc@V / Acc@A, = TNR-masked) and with all modalities present
(expected "yes", TPR), and the first `negatives_per_modality` absent cues (`Sample.absent`) are asked with all
modalities present (expected "no", TNR-absent); `mepbench.scoring.probes` combines the three.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mepbench.masking import FULL, MaskMode, Variant
from mepbench.scoring.claims import claim_consistency, claimed
from mepbench.scoring.cues import CueExtractor, Cues, ExtractionResult, LexiconCueExtractor, LLMCueExtractor
from mepbench.scoring.embedding import make_embedder
from mepbench.scoring.probes import PROBED, ProbeItem, faithfulness, parse_yes_no
from mepbench.scoring.utilization import (
    RecallRecord,
    UtilizationReport,
    aggregate_records,
    cue_recall,
    grounded_recall,
    tau_for,
)
from mepbench.tasks.base import Cell, TaskContext
from mepbench.tasks.spec import SpecError, SpecTask
from mepbench.types import GenerationParams, Modality, Sample

SCORING_DEFAULTS: dict[str, Any] = {"extractor": "lexicon", "embedder": "exact", "tau": None,
                                    "probes_per_modality": 2, "negatives_per_modality": 2, "probe_min_chars": 3,
                                    "probe_max_new_tokens": 16}
# the variant whose reasoning is scored for grounded utilization and claims of each modality
MASKED_VARIANTS = {m.value: Variant.of(m).name for m in Modality}


class MEPTask(SpecTask):
    """A SpecTask with utilization and probe metrics; `scoring:` in the spec sets extractor, embedder and τ."""

    def __init__(self, context: TaskContext, options: Any = None):
        super().__init__(context, options)
        self.scoring = self.scoring_settings(SCORING_DEFAULTS)
        if context.embedder:
            self.scoring["embedder"] = context.embedder
        if context.extractor:
            self.scoring["extractor"] = context.extractor
        if self.scoring["tau"] is None:  # the embedder's calibrated τ
            self.scoring["tau"], self.tau_source = tau_for(self.scoring["embedder"])
        else:
            self.tau_source = "set by the task or the user"
        for role in ("probe_system", "probe_user"):
            if role not in self._templates:
                raise SpecError(f"{self.spec_path}: an mep task needs a prompt.{role} template")
        self.probe_params = GenerationParams(max_new_tokens=int(self.scoring["probe_max_new_tokens"]))
        self._reports: dict[str, UtilizationReport] = {}  # per scored variant, from `score_rows`
        self._extractions: dict[str, list[ExtractionResult]] = {}
        self._embedder_name = str(self.scoring["embedder"])

    def fingerprint(self) -> str:
        """The spec fingerprint plus the scoring settings."""
        import hashlib

        return hashlib.sha256(repr((super().fingerprint(), sorted(self.scoring.items()))).encode()).hexdigest()[:16]

    def probe_cues(self, sample: Sample, modality: Modality, absent: bool = False) -> list[str]:
        """The cues of `modality` that become probes: the first k reference cues (or absent cues), long enough."""
        pool = (sample.absent if absent else sample.cues).get(modality.value, [])
        cues = [c for c in pool if len(c.strip()) >= self.scoring["probe_min_chars"]]
        return cues[: int(self.scoring["negatives_per_modality" if absent else "probes_per_modality"])]

    def expand(self, sample: Sample, variants: list[Variant], mode: MaskMode) -> list[Cell]:
        """The main question under each variant, then for video and audio: masked probes and controls about present
        cues, and negatives about absent cues (full input)."""
        cells = super().expand(sample, variants, mode)
        for modality in PROBED:
            asked = [(kind, variant, cue, j, expected) for j, cue in enumerate(self.probe_cues(sample, modality))
                     for kind, variant, expected in (("probe", Variant.of(modality), "no"), ("control", FULL, "yes"))]
            asked += [("negative", FULL, cue, j, "no") for j, cue in enumerate(self.probe_cues(sample, modality, True))]
            for kind, variant, cue, j, expected in asked:
                request = self.chat(sample, variant, mode, "probe_system", "probe_user", self.probe_params,
                                    modality=modality.value, cue=cue)
                cells.append(Cell(variant.name, f"{kind}:{modality.value}:{j}", request,
                                  {"kind": kind, "modality": modality.value, "cue": cue, "expected": expected}))
        return cells

    def _extractor(self) -> CueExtractor:
        if self.scoring["extractor"] == "lexicon":
            return LexiconCueExtractor()
        if self.scoring["extractor"] == "llm":
            judge = self.context.judge_for("cues")
            if judge is None:
                raise ValueError(f"task {self.name}: the llm cue extractor needs a judge (--judge cues=MODEL or "
                                 "--judge MODEL), or --cue-extractor lexicon")
            return LLMCueExtractor(judge)
        raise SpecError(f"{self.spec_path}: unknown extractor {self.scoring['extractor']!r} (lexicon or llm)")

    def score_rows(self, rows: list[dict[str, Any]]) -> None:
        """Emotion scores on main rows, yes/no on probe rows; cues extracted from the full-input reasoning and from
        the reasoning of each single-modality mask, in one batch, for utilization, grounded utilization and claims."""
        main = [r for r in rows if not r["item"]]
        if self.labels:
            super().score_rows(main)
        for r in rows:
            if r["item"]:
                answer = None if r["error"] else parse_yes_no(r["response"].text)
                r.update(answer={True: "yes", False: "no", None: None}[answer],
                         correct=answer is not None and answer == (r["target"]["expected"] == "yes"))
        scored = {FULL.name, *MASKED_VARIANTS.values()}
        chosen = [r for r in main if r["variant"] in scored and r["sample"] is not None]
        ok = [r for r in chosen if r["error"] is None]
        extracted = dict(zip((id(r) for r in ok), self._extractor().extract_many(
            [r["response"].text for r in ok], [r["sample_id"] for r in ok])))
        embedder = make_embedder(self.scoring["embedder"])
        self._reports, self._extractions = {}, {}
        for variant in sorted({r["variant"] for r in chosen}):
            picked = [r for r in chosen if r["variant"] == variant]
            predictions = [extracted.get(id(r)) or ExtractionResult(cues=Cues(), ok=False, error=r["error"])
                           for r in picked]
            report = cue_recall([r["sample"].cues for r in picked], predictions, embedder,
                                tau=float(self.scoring["tau"]), ids=[r["sample_id"] for r in picked], resamples=0)
            masked = next((m for m, v in MASKED_VARIANTS.items() if v == variant), None)
            for r, pred, record in zip(picked, predictions, report.records):
                r.update(pred_cues=pred.cues.to_dict(), extraction_error=pred.error, recall=record.recall,
                         precision=record.precision, cue_matches=cue_match_rows(record))
                if masked is not None:
                    r["claims"] = claimed(pred, masked)
            self._reports[variant], self._extractions[variant] = report, predictions
        self._embedder_name = embedder.name

    def paired_metrics(self) -> list[Any]:
        """The emotion metrics, when the task has labels (MEP-Bench's open-vocabulary clips have none)."""
        return super().paired_metrics() if self.labels else []

    def task_details(self, rows: list[dict[str, Any]], results: dict[str, Any], resamples: int,
                     seed: int) -> dict[str, Any]:
        """Utilization (full input, and grounded against each masked variant), claims under masking, the three-part
        probe scores, and the headline summary (which reads the variants' emotion and text-alone accuracy)."""
        out: dict[str, Any] = {}
        reports = self._reports
        full = reports.get(FULL.name)
        setting = {"embedder": self._embedder_name, "extractor": self.scoring["extractor"],
                   "tau_source": self.tau_source}
        out["utilization"] = {**_rescored(full, resamples, seed).to_dict(), **setting} if full else {}
        out["utilization_masked"] = {v: _rescored(r, resamples, seed).to_dict() for v, r in reports.items()
                                     if v != FULL.name}
        out["grounded_utilization"], out["claims"] = {}, {}
        for modality, variant in MASKED_VARIANTS.items():
            if full is None or variant not in reports:
                continue
            out["grounded_utilization"][modality] = grounded_recall(
                full.records, reports[variant].records, modality, variant, resamples=resamples, seed=seed).to_dict()
            out["claims"][modality] = claim_consistency(self._extractions[variant], modality, variant,
                                                        resamples=resamples, seed=seed).to_dict()
        out["faithfulness"] = {}
        for modality in PROBED:
            items = [ProbeItem(r["sample_id"], r["target"]["kind"], r["response"].text if r["error"] is None else "")
                     for r in rows if r["item"] and r["target"].get("modality") == modality.value]
            out["faithfulness"][modality.value] = faithfulness(items, resamples=resamples, seed=seed).to_dict()
        out["summary"] = _summary({**results, **out})
        return out


def cue_match_rows(record: RecallRecord) -> list[dict[str, Any]]:
    """The cue matches of one scored reasoning as samples-table rows (`mepbench.records.CueMatchRecord`), so the
    report shows recovered, missed and hallucinated cues without re-scoring."""
    return [{"side": side, "modality": modality, "cue": m.cue, "best": m.best, "similarity": m.similarity,
             "matched": m.matched}
            for side, table in (("reference", record.reference), ("predicted", record.predicted))
            for modality, matches in table.items() for m in matches]


def _rescored(report: UtilizationReport, resamples: int, seed: int) -> UtilizationReport:
    """The report's per-sample records aggregated again with bootstrap intervals (scoring used none)."""
    return aggregate_records(report.records, report.tau, resamples=resamples, seed=seed)


# summary key → where its estimate ({value, ci_low, ci_high}) sits in the task's aggregate
SUMMARY_ESTIMATES: dict[str, tuple[str, ...]] = {
    "emotion_accuracy": ("variants", "full", "metrics", "accuracy"),
    "text_alone_accuracy": ("variants", "mask:video+audio", "metrics", "accuracy"),
    "utilization_recall": ("utilization", "recall", "overall"),
    "utilization_recall_video": ("utilization", "recall", "video"),
    "utilization_recall_audio": ("utilization", "recall", "audio"),
    "utilization_recall_text": ("utilization", "recall", "text"),
    "grounded_recall_video": ("grounded_utilization", "video"),
    "grounded_recall_audio": ("grounded_utilization", "audio"),
    "grounded_recall_text": ("grounded_utilization", "text"),
    "claim_rate_v": ("claims", "video", "rate"),
    "claim_rate_a": ("claims", "audio", "rate"),
    "claims_per_response_v": ("claims", "video", "per_response"),
    "claims_per_response_a": ("claims", "audio", "per_response"),
    "pf_v": ("faithfulness", "video", "headline"),
    "pf_a": ("faithfulness", "audio", "headline"),
    "acc_at_v": ("faithfulness", "video", "masked", "accuracy"),
    "acc_at_a": ("faithfulness", "audio", "masked", "accuracy"),
    "control_acc_v": ("faithfulness", "video", "control", "accuracy"),
    "control_acc_a": ("faithfulness", "audio", "control", "accuracy"),
    "tnr_absent_v": ("faithfulness", "video", "absent", "accuracy"),
    "tnr_absent_a": ("faithfulness", "audio", "absent", "accuracy"),
    "balanced_absent_v": ("faithfulness", "video", "balanced_absent"),
    "balanced_absent_a": ("faithfulness", "audio", "balanced_absent"),
    "balanced_faithfulness_v": ("faithfulness", "video", "balanced_masked"),
    "balanced_faithfulness_a": ("faithfulness", "audio", "balanced_masked"),
    "yes_rate_v": ("faithfulness", "video", "yes_rate"),
    "yes_rate_a": ("faithfulness", "audio", "yes_rate"),
}


def tree_number(tree: Any, path: tuple[str, ...]) -> float | None:
    """The number at `path` in nested results; None when a key is missing or the leaf is not a number."""
    for key in path:
        if not isinstance(tree, dict) or key not in tree:
            return None
        tree = tree[key]
    return float(tree) if isinstance(tree, (int, float, np.floating)) else None


def _summary(out: dict[str, Any]) -> dict[str, float | None]:
    """The headline numbers under the paper's names (fractions; NaN/None when undefined)."""
    return {name: tree_number(out, (*path, "value")) for name, path in SUMMARY_ESTIMATES.items()}
