"""The samples behind a run, reloaded through the task plugin (subtitle, media, reference cues), and the cue
matches of each full-input reasoning recomputed with the task's own embedder and τ through the shared scorer —
the same decisions that produced the run's utilization numbers."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mepbench.report.runs import RunData
from mepbench.types import Sample


@dataclass
class TaskSamples:
    """Reloaded samples by id, cue-match records by sample id, and why either is missing (or None)."""

    samples: dict[str, Sample] = field(default_factory=dict)
    matches: dict[str, Any] = field(default_factory=dict)
    note: str | None = None


def _context(config: dict[str, Any]) -> Any:
    """The task context the run described, except pickle permission: only this process's environment grants it
    (a run directory from elsewhere must not make the report unpickle files)."""
    from mepbench.cache import default_cache_dir
    from mepbench.tasks import TaskContext

    def path(key: str) -> Path | None:
        return Path(config[key]) if config.get(key) else None

    return TaskContext(path("data_root"), path("cache_dir") or default_cache_dir(), wheel_dir=path("wheel_dir"),
                       allow_pickle=os.environ.get("MEPBENCH_ALLOW_PICKLE") == "1", media_required=False,
                       embedder=config.get("embedder"), extractor=config.get("cue_extractor"))


def _matches(task: Any, run: RunData, name: str, samples: dict[str, Sample]) -> dict[str, Any]:
    """Per sample id, the utilization record (reference and predicted cues with their best match)."""
    from mepbench.scoring.embedding import make_embedder
    from mepbench.scoring.utilization import cue_recall

    ids, refs, preds = [], [], []
    rows = run.main_rows(name)
    for sample_id, scores in zip(rows["sample_id"], rows["scores"]):
        cues = json.loads(scores or "{}").get("pred_cues")
        if cues is not None and sample_id in samples:
            ids.append(sample_id)
            refs.append(samples[sample_id].cues)
            preds.append(cues)
    if not ids:
        return {}
    report = cue_recall(refs, preds, make_embedder(task.scoring["embedder"]), tau=float(task.scoring["tau"]),
                        ids=ids, resamples=0)
    return {r.sample_id: r for r in report.records}


class SampleLoader:
    """Reloads task samples for runs, once per (task, data settings) so many runs of one task share the work."""

    def __init__(self) -> None:
        self._loaded: dict[str, tuple[Any, dict[str, Sample]] | str] = {}

    def _task(self, run: RunData, name: str) -> tuple[Any, dict[str, Sample]] | str:
        keys = ("include_paths", "data_root", "cache_dir", "wheel_dir", "embedder", "cue_extractor")
        key = json.dumps([name, *(run.config.get(k) for k in keys)], default=str)
        if key not in self._loaded:
            from mepbench.tasks import TaskRegistry

            try:
                task = TaskRegistry(tuple(run.config.get("include_paths") or ())).create(name, _context(run.config))
                self._loaded[key] = (task, {s.id: s for s in task.load(None).samples})
            except Exception as exc:  # the report must render without the data: say why the explorer is thinner
                self._loaded[key] = f"samples not reloaded ({type(exc).__name__}: {exc})"
        return self._loaded[key]

    def __call__(self, run: RunData, name: str) -> TaskSamples:
        """The samples of task `name` as `run` saw them, with cue matches for MEP tasks; failures become notes."""
        loaded = self._task(run, name)
        if isinstance(loaded, str):
            return TaskSamples(note=loaded)
        task, samples = loaded
        out = TaskSamples(samples)
        if "embedder" in getattr(task, "scoring", {}):
            try:
                out.matches = _matches(task, run, name, samples)
            except Exception as exc:  # e.g. the embedder is not installed here
                out.note = f"cue matches not recomputed ({type(exc).__name__}: {exc})"
        return out
