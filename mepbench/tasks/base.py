"""The `Task` base class: samples in, requests out, per-sample scores and aggregate metrics back."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mepbench.aggregation import PairedMetric
from mepbench.masking import FULL, MaskMode, Variant
from mepbench.scoring import metrics as M
from mepbench.scoring.answer import match_label, parse_answer
from mepbench.tasks.options import NoOptions, build_options
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
    """What the run provides every task: where data lies and derived files may be cached, judges by role (cue
    extraction, LLM judging; responses cached), embedder / cue-extractor overrides, the pickle opt-in for label files,
    whether media must exist (not for replayed outputs), released extraction caches (MER-UniBench replay) and the
    judge ledger (token accounting and budget). A setting of one task is a task option (`Task.Options`), not a field
    here."""

    data_root: Path | None
    cache_dir: Path
    judges: dict[str, Any] = field(default_factory=dict)
    embedder: str | None = None
    extractor: str | None = None
    allow_pickle: bool = False
    media_required: bool = True
    openset: Any = None
    judge_ledger: Any = None

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
    scale: float = 1  # the results' unit: 1 for fractions, 100 for percentages
    Options: type = NoOptions  # the task's options: a frozen dataclass of `mepbench.tasks.options.option` fields

    def __init__(self, context: TaskContext, options: Any = None):
        self.context = context
        self.options = options if options is not None else self.options_from({})

    @classmethod
    def options_from(cls, values: dict[str, Any]) -> Any:
        """The task's options with `values` (from `--task-arg`) over the defaults, checked against their types."""
        return build_options(cls.Options, values, f"task {cls.name}")

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

    def paired_metrics(self) -> list[PairedMetric]:
        """The task's metrics as resampleable `PairedMetric`s (each variant's intervals and reliance use them): by
        default the classification metrics over `labels`, failed rows counting as wrong."""
        return [classification_metric(name, self.labels) for name in self.metrics]

    def prediction(self, row: dict[str, Any]) -> Any:
        """What reliance compares for the flip rate: the parsed label (None for a failed row)."""
        return None if row.get("error") else row.get("pred")

    def variant_details(self, rows: list[dict[str, Any]], resamples: int, seed: int) -> dict[str, Any]:
        """What this task adds to one variant's block (its main rows); a `metrics` entry is merged into the
        declared metrics. None by default."""
        return {}

    def task_details(self, rows: list[dict[str, Any]], results: dict[str, Any], resamples: int,
                     seed: int) -> dict[str, Any]:
        """Blocks this task adds to its `results` (variants and reliance computed) from all its rows, probes
        included. None by default."""
        return {}


def classification_metric(name: str, labels: list[str]) -> PairedMetric:
    """Metric `name` of `mepbench.scoring.metrics` on rows coded against `labels`: the truth is the row's label, the
    prediction its `pred`; a failed row or an unparsed answer predicts -1 (wrong for every class)."""
    code = {label: i for i, label in enumerate(labels)}
    fn = M.METRICS[name]

    def units(rows: list[dict[str, Any]]) -> np.ndarray:
        truth = [code.get(r["label"], -2) for r in rows]
        pred = [-1 if r.get("error") else code.get(r.get("pred"), -1) for r in rows]
        return np.array([truth, pred], dtype=int).reshape(2, len(rows))

    return PairedMetric(name, units, lambda u, idx: fn(u[0][idx], u[1][idx], len(labels)),
                        proportion=name == "accuracy")
