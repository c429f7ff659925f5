"""MER-UniBench datasets as tasks (AffectGPT, ICML 2025; benchmarks.md §1): the model answers freely, the
published extractor turns the answer into an open-set emotion list (and, for sentiment sets, a sentiment
word), and HIT / WAF+ACC / Fs+P+R are computed exactly as published on the paper's 0–100 scale.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from mepbench.aggregation import PairedMetric
from mepbench.scoring import metrics as M
from mepbench.scoring.mer_metrics import score_checkpoint
from mepbench.scoring.mer_resample import ClipShares, clip_shares, metric_on
from mepbench.scoring.openset import LLMOpenSet, OpenSetSource
from mepbench.scoring.wheel import load_wheels
from mepbench.tasks.base import LoadResult, TaskContext
from mepbench.tasks.mer_data import MerDataset, load_labels, resolve_dataset
from mepbench.tasks.options import option
from mepbench.tasks.spec import SpecError, SpecTask
from mepbench.types import Sample

VIDEO_EXTS = (".mp4", ".avi", ".mkv")
SECONDARY = {"hit": (), "sentiment": (("ACC", "acc"),), "openset": (("Precision_s", "precision"), ("Recall_s", "recall"))}


def _subtitles(folder: Path, spec: MerDataset) -> dict[str, str]:
    path = folder / spec.subtitle_file
    if not path.is_file():
        return {}
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not {"name", spec.subtitle_column} <= set(reader.fieldnames):
            raise ValueError(f"{path}: expected columns 'name' and {spec.subtitle_column!r}; "
                             f"found {reader.fieldnames}")
        return {row["name"]: row[spec.subtitle_column] for row in reader}


def _video_index(folder: Path) -> dict[str, Path]:
    """Clip name → video file, from one listing of `video/` and `subvideo*/` (first found wins)."""
    index: dict[str, Path] = {}
    for d in [folder / "video", *sorted(folder.glob("subvideo*"))]:
        if d.is_dir():
            for entry in sorted(os.scandir(d), key=lambda e: e.name):
                stem, ext = os.path.splitext(entry.name)
                if ext.lower() in VIDEO_EXTS:
                    index.setdefault(stem, Path(entry.path))
    return index


@lru_cache(maxsize=32)
def _samples(data_root: Path, name: str, allow_pickle: bool, media_required: bool,
             stamp: tuple[float, ...]) -> tuple[Sample, ...]:
    """All samples of one dataset (memoised per label-file version, so replaying many checkpoints loads once)."""
    spec = resolve_dataset(name)
    labels = load_labels(data_root, spec.name, allow_pickle=allow_pickle)
    folder = data_root / spec.folder
    subtitles, videos = _subtitles(folder, spec), _video_index(folder)
    audios = {os.path.splitext(e.name)[0] for e in os.scandir(folder / "audio")} if (folder / "audio").is_dir() else set()
    samples = []
    for clip in sorted(labels):
        video, audio = videos.get(clip), folder / "audio" / f"{clip}.wav"
        if media_required:
            video = video or folder / "video" / f"{clip}.mp4"
        elif clip not in audios:
            audio = None
        samples.append(Sample(id=clip, video=str(video) if video else None, audio=str(audio) if audio else None,
                              subtitle=subtitles.get(clip, ""), label=labels[clip], source=str(folder)))
    return tuple(samples)


def load_affectgpt(context: TaskContext, name: str, limit: int | None = None, **_: Any) -> LoadResult:
    """One dataset in AffectGPT's processed layout under `--data-root`: labels (required), transcripts and
    media. Missing media stay as paths (a per-sample error names them) unless the backend needs none."""
    if context.data_root is None:
        raise FileNotFoundError(f"{name} needs --data-root: the folder holding the AffectGPT processed datasets")
    label_file = resolve_dataset(name).label_path(context.data_root)
    stamp = (label_file.stat().st_mtime,) if label_file.is_file() else ()
    samples = _samples(context.data_root, name, context.allow_pickle, context.media_required, stamp)
    return LoadResult(samples=list(samples[:limit]))


@dataclass(frozen=True)
class MEROptions:
    """Where the emotion wheels are, how open-set lists are extracted, and which replayed checkpoint is reported."""

    wheel_dir: Path | None = option(None, "AffectGPT's emotion_wheel/ folder (default $MEPBENCH_WHEEL_DIR); "
                                    "needed by the HIT and Fs datasets")
    extraction_mode: Literal["deterministic", "upstream"] = option(
        "deterministic", "open-set extraction: deterministic (greedy) or upstream (the published sampling)")
    checkpoint_select: str = option("best", "replay of an AffectGPT results folder: best (first maximum of the "
                                    "primary metric, as published), last, a checkpoint name or an epoch")


class MERTask(SpecTask):
    """A MER-UniBench dataset; the spec's `dataset.name` picks it, its primary metric is the paper's (0–100)."""

    scale = 100
    Options = MEROptions

    def __init__(self, context: TaskContext, options: Any = None):
        super().__init__(context, options)
        self.dataset = resolve_dataset(self.spec["dataset"].get("name", ""))
        self.primary_metric = self.dataset.metric
        self.metrics = (self.dataset.metric,)
        self.extraction_mode = self.options.extraction_mode
        self._source_id = ""
        self._wheels_loaded: tuple[Any] | None = None

    def _source(self) -> OpenSetSource:
        if self.context.openset is not None:
            return self.context.openset
        judge = self.context.judge_for("extract")
        if judge is None:
            raise ValueError(f"task {self.name}: open-set extraction needs an extractor model (--judge "
                             "extract=MODEL, e.g. Qwen/Qwen2.5-7B-Instruct as published) or released caches (replay "
                             "of an AffectGPT results folder)")
        return LLMOpenSet(judge, self.extraction_mode)

    def _wheels(self) -> Any:
        folder = self.options.wheel_dir or os.environ.get("MEPBENCH_WHEEL_DIR")
        if self.dataset.kind == "sentiment":
            return None
        if not folder:
            raise SpecError(f"task {self.name}: scoring needs the emotion-wheel files; pass --task-arg "
                            "wheel_dir=FOLDER or set "
                            "MEPBENCH_WHEEL_DIR (the folder AffectGPT/emotion_wheel/ of "
                            "github.com/zeroQiaoba/AffectGPT)")
        return load_wheels(folder)

    def score_rows(self, rows: list[dict[str, Any]]) -> None:
        """Extract the open-set list (and sentiment) of every answered main row; failures stay empty."""
        answered = [r for r in rows if not r["item"] and r["error"] is None]
        source = self._source()
        self._source_id = source.describe()
        ids = [r["sample_id"] for r in answered]
        opensets = source.openset([r["response"].text for r in answered], ids)
        sentiments = (source.sentiment([o or "[]" for o in opensets], ids) if self.dataset.kind == "sentiment"
                      else [None] * len(answered))
        for r, o, s in zip(answered, opensets, sentiments):
            r.update(openset=o, sentiment=s, extraction_failed=o is None)

    def _prediction_key(self) -> tuple[str, str]:
        """The row field the metric reads and what a failed answer predicts (an empty prediction, as published)."""
        return ("sentiment", "") if self.dataset.kind == "sentiment" else ("openset", "[]")

    def paired_metrics(self) -> list[PairedMetric]:
        """The published metric as each clip's share of it (`mepbench.scoring.mer_resample`), so intervals and
        reliance resample clips; on the whole set it equals the published scorer."""
        key, empty = self._prediction_key()
        wheels = self._wheel_table()
        kind = self.dataset.kind

        def units(rows: list[dict[str, Any]]) -> ClipShares:
            return clip_shares(kind, [r.get(key) or empty for r in rows], [r["label"] for r in rows], wheels)

        return [PairedMetric(self.dataset.metric, units, metric_on)]

    def prediction(self, row: dict[str, Any]) -> Any:
        """The extracted open-set list (or sentiment word) reliance compares for the flip rate."""
        return row.get(self._prediction_key()[0])

    def variant_details(self, rows: list[dict[str, Any]], resamples: int, seed: int) -> dict[str, Any]:
        """The published scorer on the variant (failed answers score as empty predictions): the primary metric's
        value as it computes it (its interval comes from the clip shares), the secondary metrics (no interval),
        confusions and extraction failures."""
        key, empty = self._prediction_key()
        scored = score_checkpoint(self.dataset.kind, {r["sample_id"]: r["label"] for r in rows}, self._wheel_table(),
                                  openset={r["sample_id"]: r.get("openset") or "[]" for r in rows},
                                  sentiment={r["sample_id"]: r.get("sentiment") or "" for r in rows},
                                  source=f"{self.name} {rows[0]['variant']}", with_confusion=True)
        metrics = {self.dataset.metric: {"value": scored.pop("primary")}}
        metrics.update({name: M.Estimate(scored[field], float("nan"), float("nan"), len(rows), None).to_dict()
                        for name, field in SECONDARY[self.dataset.kind]})
        return {"extraction_failed": sum(1 for r in rows if r.get("extraction_failed")), "metrics": metrics,
                "details": scored}

    def task_details(self, rows: list[dict[str, Any]], results: dict[str, Any], resamples: int,
                     seed: int) -> dict[str, Any]:
        """Which extraction produced the open-set lists, and in which mode."""
        return {"extraction": self._source_id, "extraction_mode": self.extraction_mode}

    def _wheel_table(self) -> Any:
        if self._wheels_loaded is None:
            self._wheels_loaded = (self._wheels(),)
        return self._wheels_loaded[0]
