"""Replaying a results folder in AffectGPT's layout (`results-<dataset>/<run>/<checkpoint>.npz` with the
`-openset.npz` / `-openset-sentiment.npz` caches beside) through the normal runner, one checkpoint at a
time, then choosing the checkpoint as upstream does (`best` = first maximum of the primary metric,
benchmarks.md §1.2 step 5) or as asked (`last`, a checkpoint name, an epoch number).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from mepbench.backends.replay import ReplayBackend
from mepbench.runner import EvalConfig, RunOutput, group_scores, make_context, run_eval
from mepbench.scoring.mer_metrics import select_checkpoint
from mepbench.scoring.openset import CachedOpenSet
from mepbench.tasks import TaskRegistry
from mepbench.tasks.mer import MERTask
from mepbench.tasks.mer_data import read_affectgpt_results, resolve_dataset


def is_affectgpt_results(path: str | Path) -> bool:
    """Whether `path` is a folder with AffectGPT `results-<dataset>` folders (directly or under `output/`)."""
    p = Path(path)
    return p.is_dir() and any(q.is_dir() for q in [*p.glob("results-*"), *p.glob("output/results-*")])


class AffectGPTResults:
    """The whole results folder as one replayed "model" (for results.json; answers come per checkpoint)."""

    name = "replay"
    capabilities = ReplayBackend.capabilities

    def __init__(self, folder: Path):
        self.folder = folder
        files = sorted(p for p in folder.rglob("*.npz"))
        blob = "\n".join(f"{p.relative_to(folder)}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files)
        self._fingerprint = "affectgpt:" + hashlib.sha256(blob.encode()).hexdigest()

    def fingerprint(self) -> str:
        """Hash over the folder's npz files (names, sizes, modification times)."""
        return self._fingerprint

    def describe(self) -> dict[str, object]:
        """Where the outputs came from."""
        return {"backend": "replay", "layout": "affectgpt", "results_dir": str(self.folder.resolve())}

    def generate(self, requests: list[Any]) -> list[Any]:
        """Never called: each checkpoint is replayed by its own ReplayBackend."""
        raise RuntimeError("AffectGPTResults is a description of a folder, not a backend to call")


def run_affectgpt_replay(config: EvalConfig, progress: Callable[[int, int], Callable[[int], None]] | None = None
                         ) -> RunOutput:
    """Score every requested MER-UniBench task on every checkpoint of `config.model`; keep the chosen one."""
    folder = Path(config.model)
    registry = TaskRegistry(tuple(config.include_paths))
    names = registry.resolve(config.tasks)
    described = AffectGPTResults(folder)
    base = make_context(config, described)
    chosen: dict[str, RunOutput] = {}
    for name in names:
        if not issubclass(registry.tasks[name], MERTask):
            raise ValueError(f"task {name!r} is not a MER-UniBench task; an AffectGPT results folder only "
                             "answers those")
        dataset = resolve_dataset(registry.tasks[name].spec["dataset"]["name"])
        per: dict[str, RunOutput] = {}
        for stem, files in read_affectgpt_results(folder, dataset.name, allow_pickle=base.allow_pickle).items():
            if files["answers"] is None:
                raise FileNotFoundError(f"{files['openset_file']}: no answers file {stem}.npz beside the cache")
            cache = (CachedOpenSet(files["openset"], files["sentiment"], str(files["openset_file"]))
                     if files["openset"] is not None else None)
            backend = ReplayBackend(str(files["answers"]), allow_pickle=base.allow_pickle)
            per[stem] = run_eval(replace(config, tasks=[name], variants=["full"]), backend=backend,
                                 progress=progress, context=replace(base, openset=cache))
        metric = dataset.metric
        primary = {s: o.tasks[name]["variants"]["full"]["metrics"][metric]["value"] for s, o in per.items()}
        winner = select_checkpoint(primary, config.checkpoint_select)
        chosen[name] = per[winner]
        chosen[name].tasks[name].update(checkpoints=primary, selected_checkpoint=winner,
                                        checkpoint_select=config.checkpoint_select)
    tasks = {n: o.tasks[n] for n, o in chosen.items()}
    task_objects = {n: o.task_objects[n] for n, o in chosen.items()}
    stats: dict[str, Any] = {}
    for o in chosen.values():
        for key, value in o.stats.items():
            if isinstance(value, dict):  # counts by reason
                stats[key] = dict(Counter(stats.get(key, {})) + Counter(value))
            else:
                stats[key] = stats.get(key, 0) + value
    return RunOutput([i for o in chosen.values() for i in o.items], [r for o in chosen.values() for r in o.rows],
                     tasks, group_scores(registry, config.tasks, tasks, task_objects), stats, task_objects, described)

