"""The `Task` base class: samples in, requests out, per-sample scores and aggregate metrics back."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mepbench.masking import FULL, MaskMode, Variant
from mepbench.scoring import metrics as M
from mepbench.scoring.answer import match_label, parse_answer
from mepbench.types import GenerationParams, Request, Response, Sample, SampleError


@dataclass
class LoadResult:
    """Samples that loaded, and per-sample errors for those that did not (never silently dropped)."""

    samples: list[Sample] = field(default_factory=list)
    errors: list[SampleError] = field(default_factory=list)


@dataclass(frozen=True)
class Cell:
    """One request a task makes for a sample: its variant, an item name ("" for the main question,
    e.g. `probe:video:0` for extra questions) and the target the scorer checks the answer against."""

    variant: str
    item: str
    request: Request
    target: dict[str, Any] = field(default_factory=dict)


def item_kind(item: str) -> str:
    """What a request asks: `main` for the task's own question (item ""), else its item's prefix (`probe`, `control`,
    `negative`, ...), so rows can be told apart without parsing item names."""
    return item.split(":", 1)[0] if item else "main"


@dataclass(frozen=True)
class TaskContext:
    """Where a task finds its data and may cache derived files, and the scoring resources the run provides:
    judges by role (cue extraction, LLM judging; responses cached), embedder / cue-extractor overrides,
    MER-UniBench settings (wheel folder, pickle opt-in for label files, released extraction caches,
    extraction mode), whether media must exist (not for replayed outputs), the judge ledger (token
    accounting and budget) and the MME-Emotion scoring mode (`strict` or `upstream`)."""

    data_root: Path | None
    cache_dir: Path
    judges: dict[str, Any] = field(default_factory=dict)
    embedder: str | None = None
    extractor: str | None = None
    wheel_dir: Path | None = None
    allow_pickle: bool = False
    media_required: bool = True
    openset: Any = None
    extraction_mode: str | None = None
    judge_ledger: Any = None
    mme_mode: str | None = None

    def judge_for(self, role: str) -> Any:
        """The judge backend named for `role`, else the default judge, else None."""
        return self.judges.get(role) or self.judges.get("default")


class Task(ABC):
    """A benchmark task. Subclasses load samples and build requests; scoring defaults to classification."""

    name: str = ""
    description: str = ""
    labels: list[str] = []
    synonyms: dict[str, str] = {}
    variants: tuple[Variant, ...] = (FULL,)
    metrics: tuple[str, ...] = ("accuracy", "macro_f1")
    primary_metric: str = "accuracy"
    params: GenerationParams = GenerationParams()
    mask_mode: MaskMode = MaskMode.DROP

    def __init__(self, context: TaskContext):
        self.context = context

    @abstractmethod
    def load(self, limit: int | None = None) -> LoadResult:
        """Load (at most `limit`) samples; invalid ones become SampleErrors."""

    @abstractmethod
    def build_request(self, sample: Sample, variant: Variant, mode: MaskMode) -> Request:
        """The request for one sample under one variant and mask mode."""

    def expand(self, sample: Sample, variants: list[Variant], mode: MaskMode) -> list[Cell]:
        """Every request for one sample: by default the main question under each variant."""
        return [Cell(v.name, "", self.build_request(sample, v, mode)) for v in variants]

    def fingerprint(self) -> str:
        """Hash of everything that defines the task's prompts and scoring (recorded in results)."""
        blob = repr((self.name, self.labels, sorted(self.synonyms.items()), self.metrics, self.params))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def score_rows(self, rows: list[dict[str, Any]]) -> None:
        """Add per-sample scores to every successful row in place; tasks needing batched scoring
        resources (an extractor model, an embedder) override this."""
        for row in rows:
            if row["error"] is None and row["sample"] is not None:
                row.update(self.score(row["sample"], row["response"]))

    def score(self, sample: Sample, response: Response) -> dict[str, Any]:
        """Per-sample fields: parsed prediction, correctness and format compliance."""
        parsed = parse_answer(response.text)
        pred = match_label(parsed.answer, self.labels, self.synonyms)
        return {"pred": pred, "correct": pred is not None and pred == sample.label,
                "format_ok": parsed.format_ok, "answer": parsed.answer}

    def aggregate(self, rows: list[dict[str, Any]], resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
        """Metrics per variant with bootstrap CIs, plus paired reliance (drop, flip rate) vs `full`.

        `rows` carry `sample_id`, `variant`, `label`, `pred` and `error`; failed rows count as wrong
        (prediction −1) so failures can never raise a score.
        """
        code = {label: i for i, label in enumerate(self.labels)}
        by_variant: dict[str, dict[str, tuple[int, int]]] = {}
        failed: dict[str, int] = {}
        for r in rows:
            if r.get("item"):
                continue
            truth = code.get(r["label"], -2)
            pred = -1 if r.get("error") else code.get(r.get("pred"), -1)
            by_variant.setdefault(r["variant"], {})[r["sample_id"]] = (truth, pred)
            failed[r["variant"]] = failed.get(r["variant"], 0) + bool(r.get("error"))
        out: dict[str, Any] = {"variants": {}, "reliance": {}, "scale": 1}
        full = by_variant.get(FULL.name, {})
        for variant, items in by_variant.items():
            ids = sorted(items)
            t = np.array([items[i][0] for i in ids]); p = np.array([items[i][1] for i in ids])
            idx = M.bootstrap_indices(len(ids), resamples, seed)
            out["variants"][variant] = {
                "n": len(ids), "failed": failed[variant],
                "metrics": {m: M.score(m, t, p, len(self.labels), idx).to_dict() for m in self.metrics}}
            if variant == FULL.name:
                continue
            shared = sorted(set(ids) & set(full))
            t = np.array([full[i][0] for i in shared]); pf = np.array([full[i][1] for i in shared])
            pm = np.array([items[i][1] for i in shared])
            idx = M.bootstrap_indices(len(shared), resamples, seed)
            out["reliance"][variant] = {
                "n": len(shared), "flip_rate": M.flip_rate(pf, pm, idx).to_dict(),
                "drop": {m: M.paired_drop(m, t, pf, pm, len(self.labels), idx).to_dict() for m in self.metrics}}
        return out
