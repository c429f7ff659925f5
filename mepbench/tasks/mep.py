"""MEP-style tasks: emotion accuracy and reliance, utilization (cue recall) and faithfulness probes.

Protocol (OPPO paper §2.2, built model-independently): the main question is asked under every variant;
utilization compares the cues extracted from the full-input reasoning with the sample's reference cues
(same modality, cosine ≥ τ); for each of video and audio, the first `probes_per_modality` reference cues
(at least `probe_min_chars` long) become yes/no probes asked with that modality masked (expected "no",
Acc@V / Acc@A) and, as positive controls, with all modalities present (expected "yes").
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mepbench.masking import FULL, MaskMode, Variant
from mepbench.scoring.cues import CueExtractor, Cues, ExtractionResult, LexiconCueExtractor, LLMCueExtractor
from mepbench.scoring.embedding import make_embedder
from mepbench.scoring.probes import faithfulness, parse_yes_no
from mepbench.scoring.utilization import DEFAULT_TAU, cue_recall
from mepbench.tasks.base import Cell, TaskContext
from mepbench.tasks.spec import SpecError, SpecTask
from mepbench.types import GenerationParams, Modality, Sample

PROBED = (Modality.VIDEO, Modality.AUDIO)
SCORING_DEFAULTS: dict[str, Any] = {"extractor": "lexicon", "embedder": "exact", "tau": DEFAULT_TAU,
                                    "probes_per_modality": 2, "probe_min_chars": 3, "probe_max_new_tokens": 16}


class MEPTask(SpecTask):
    """A SpecTask with utilization and probe metrics; `scoring:` in the spec sets extractor, embedder and τ."""

    def __init__(self, context: TaskContext):
        super().__init__(context)
        self.scoring = self.scoring_settings(SCORING_DEFAULTS)
        if context.embedder:
            self.scoring["embedder"] = context.embedder
        if context.extractor:
            self.scoring["extractor"] = context.extractor
        for role in ("probe_system", "probe_user"):
            if role not in self._templates:
                raise SpecError(f"{self.spec_path}: an mep task needs a prompt.{role} template")
        self.probe_params = GenerationParams(max_new_tokens=int(self.scoring["probe_max_new_tokens"]))
        self._utilization: dict[str, Any] = {}

    def fingerprint(self) -> str:
        """The spec fingerprint plus the scoring settings."""
        import hashlib

        return hashlib.sha256(repr((super().fingerprint(), sorted(self.scoring.items()))).encode()).hexdigest()[:16]

    def probe_cues(self, sample: Sample, modality: Modality) -> list[str]:
        """The reference cues of `modality` that become probes (first k, long enough)."""
        cues = [c for c in sample.cues.get(modality.value, []) if len(c.strip()) >= self.scoring["probe_min_chars"]]
        return cues[: int(self.scoring["probes_per_modality"])]

    def expand(self, sample: Sample, variants: list[Variant], mode: MaskMode) -> list[Cell]:
        """The main question under each variant, then masked probes and controls for video and audio."""
        cells = super().expand(sample, variants, mode)
        for modality in PROBED:
            for j, cue in enumerate(self.probe_cues(sample, modality)):
                for kind, variant, expected in (("probe", Variant.of(modality), "no"), ("control", FULL, "yes")):
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
        """Emotion scores on main rows, yes/no on probe rows, cue recall on full-input reasoning."""
        main = [r for r in rows if not r["item"]]
        if self.labels:
            super().score_rows(main)
        for r in rows:
            if r["item"]:
                answer = None if r["error"] else parse_yes_no(r["response"].text)
                r.update(answer={True: "yes", False: "no", None: None}[answer],
                         correct=answer is not None and answer == (r["target"]["expected"] == "yes"))
        full = [r for r in main if r["variant"] == FULL.name and r["sample"] is not None]
        ok = [r for r in full if r["error"] is None]
        extracted = dict(zip((id(r) for r in ok), self._extractor().extract_many(
            [r["response"].text for r in ok], [r["sample_id"] for r in ok])))
        predictions = [extracted.get(id(r)) or ExtractionResult(cues=Cues(), ok=False, error=r["error"])
                       for r in full]
        report = cue_recall([r["sample"].cues for r in full], predictions, make_embedder(self.scoring["embedder"]),
                            tau=float(self.scoring["tau"]), ids=[r["sample_id"] for r in full])
        for r, pred, record in zip(full, predictions, report.records):
            r.update(pred_cues=pred.cues.to_dict(), extraction_error=pred.error, recall=record.recall,
                     precision=record.precision)
        self._utilization = report.to_dict()

    def aggregate(self, rows: list[dict[str, Any]], resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
        """Emotion metrics and reliance, utilization, probe accuracies and the text-alone accuracy."""
        out = super().aggregate(rows, resamples, seed) if self.labels else {"variants": {}, "reliance": {}}
        out["utilization"] = self._utilization
        probes: dict[str, Any] = {}
        for modality in PROBED:
            answers = {kind: [r["response"].text if r["error"] is None else "" for r in rows
                              if r["item"].startswith(f"{kind}:{modality.value}:")] for kind in ("probe", "control")}
            probes[modality.value] = faithfulness(answers["probe"], answers["control"], resamples=resamples,
                                                  seed=seed).to_dict()
        out["faithfulness"] = probes
        out["summary"] = _summary(out)
        return out


# summary key → where its estimate ({value, ci_low, ci_high}) sits in the task's aggregate
SUMMARY_ESTIMATES: dict[str, tuple[str, ...]] = {
    "emotion_accuracy": ("variants", "full", "metrics", "accuracy"),
    "text_alone_accuracy": ("variants", "mask:video+audio", "metrics", "accuracy"),
    "utilization_recall": ("utilization", "recall", "overall"),
    "utilization_recall_video": ("utilization", "recall", "video"),
    "utilization_recall_audio": ("utilization", "recall", "audio"),
    "acc_at_v": ("faithfulness", "video", "masked", "accuracy"),
    "acc_at_a": ("faithfulness", "audio", "masked", "accuracy"),
    "control_acc_v": ("faithfulness", "video", "control", "accuracy"),
    "control_acc_a": ("faithfulness", "audio", "control", "accuracy"),
    "balanced_faithfulness_v": ("faithfulness", "video", "balanced"),
    "balanced_faithfulness_a": ("faithfulness", "audio", "balanced"),
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
