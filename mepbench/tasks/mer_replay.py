"""An AffectGPT results folder (`results-<dataset>/<run>/<checkpoint>.npz` with the `-openset.npz` /
`-openset-sentiment.npz` caches beside) as a replayed model with several checkpoints: the runner renders each
task's requests once, answers them from every checkpoint, scores each, and reports the one the task's
`checkpoint_select` option picks (`best` = first maximum of the primary metric, benchmarks.md §1.2 step 5)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mepbench.backends.replay import ReplayBackend
from mepbench.scoring.openset import CachedOpenSet
from mepbench.tasks.mer_data import read_affectgpt_results, resolve_dataset


def is_affectgpt_results(path: str | Path) -> bool:
    """Whether `path` is a folder with AffectGPT `results-<dataset>` folders (directly or under `output/`)."""
    p = Path(path)
    return p.is_dir() and any(q.is_dir() for q in [*p.glob("results-*"), *p.glob("output/results-*")])


@dataclass(frozen=True)
class Checkpoint:
    """One checkpoint's replayed answers and, where released, its extraction caches."""

    backend: ReplayBackend
    openset: CachedOpenSet | None


class AffectGPTResults:
    """The whole results folder as one replayed "model"; `checkpoints(task)` gives what answers each checkpoint."""

    name = "replay"
    capabilities = ReplayBackend.capabilities

    def __init__(self, folder: str | Path, *, allow_pickle: bool = False, **_: Any):
        self.folder = Path(folder)
        self.allow_pickle = allow_pickle
        files = sorted(p for p in self.folder.rglob("*.npz"))
        blob = "\n".join(f"{p.relative_to(self.folder)}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files)
        self._fingerprint = "affectgpt:" + hashlib.sha256(blob.encode()).hexdigest()

    def fingerprint(self) -> str:
        """Hash over the folder's npz files (names, sizes, modification times)."""
        return self._fingerprint

    def describe(self) -> dict[str, object]:
        """Where the outputs came from."""
        return {"backend": "replay", "layout": "affectgpt", "results_dir": str(self.folder.resolve())}

    def checkpoints(self, task: Any) -> dict[str, Checkpoint]:
        """Every checkpoint the folder holds for a MER-UniBench task, by name in sorted order."""
        dataset = getattr(task, "dataset", None)
        if dataset is None or not hasattr(dataset, "metric"):
            raise ValueError(f"task {task.name!r} is not a MER-UniBench task; an AffectGPT results folder only "
                             "answers those")
        out = {}
        for stem, files in read_affectgpt_results(self.folder, resolve_dataset(dataset.name).name,
                                                  allow_pickle=self.allow_pickle).items():
            if files["answers"] is None:
                raise FileNotFoundError(f"{files['openset_file']}: no answers file {stem}.npz beside the cache")
            cache = (CachedOpenSet(files["openset"], files["sentiment"], str(files["openset_file"]))
                     if files["openset"] is not None else None)
            out[stem] = Checkpoint(ReplayBackend(str(files["answers"]), allow_pickle=self.allow_pickle), cache)
        return out

    def generate(self, requests: list[Any]) -> list[Any]:
        """Never called: each checkpoint answers through its own ReplayBackend."""
        raise RuntimeError("AffectGPTResults is a description of a folder, not a backend to call")
