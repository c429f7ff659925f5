"""MER-UniBench data layer: the AffectGPT processed label files, AffectGPT's released result layout, and
rescoring released extraction caches without any model (benchmarks.md §1.1, §1.2 step 5, §1.6).

Label `.npz` files are NumPy archives of pickled dicts. Unpickling can run code, so they load only with
`allow_pickle=True`, an explicit opt-in for files you trust; nothing else is ever unpickled unless asked.
"""

from __future__ import annotations

import csv
import pickle
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from mepbench.scoring.mer_metrics import (
    PRIMARY_METRIC,
    score_checkpoint,
    select_checkpoint,
)
from mepbench.scoring.wheel import EmotionWheels, load_wheels, split_label_list

MELD_CLASSES = ("anger", "joy", "sadness", "neutral", "disgust", "fear", "surprise")
IEMOCAP_CLASSES = ("happy", "sad", "neutral", "anger")
OPENSET_SUFFIX = "-openset.npz"
SENTIMENT_SUFFIX = "-openset-sentiment.npz"


@dataclass(frozen=True)
class MerDataset:
    """One MER-UniBench dataset: where its labels live, the published split size and how it is scored."""

    name: str
    title: str
    folder: str
    label_file: str
    split: str
    count: int
    kind: str
    classes: tuple[str, ...] | None = None
    subtitle_file: str = "transcription-engchi-polish.csv"
    subtitle_column: str = "english"

    @property
    def metric(self) -> str:
        """The primary metric's name in the paper (HIT, WAF or Fs)."""
        return PRIMARY_METRIC[self.kind]

    def label_path(self, data_root: str | Path) -> Path:
        """The label file under a folder holding the AffectGPT processed datasets."""
        return Path(data_root) / self.folder / self.label_file


MER_DATASETS: dict[str, MerDataset] = {d.name: d for d in (
    MerDataset("mer2023", "MER2023", "mer2023-dataset-process", "label-6way.npz", "test1_corpus", 411, "hit"),
    MerDataset("mer2024", "MER2024", "mer2024-dataset-process", "label-6way.npz", "test1_corpus", 1169, "hit",
               subtitle_file="transcription_merge.csv", subtitle_column="chinese"),
    MerDataset("meld", "MELD", "meld-process", "label.npz", "test_corpus", 2610, "hit", classes=MELD_CLASSES),
    MerDataset("iemocapfour", "IEMOCAP", "iemocap-process", "label_4way.npz", "whole_corpus:session5", 1241, "hit",
               classes=IEMOCAP_CLASSES),
    MerDataset("cmumosi", "CMU-MOSI", "cmumosi-process", "label.npz", "test_corpus", 686, "sentiment"),
    MerDataset("cmumosei", "CMU-MOSEI", "cmumosei-process", "label.npz", "test_corpus", 4659, "sentiment"),
    MerDataset("sims", "CH-SIMS", "sims-process", "label.npz", "test_corpus", 457, "sentiment"),
    MerDataset("simsv2", "CH-SIMS v2", "simsv2-process", "label.npz", "test_corpus", 1034, "sentiment"),
    MerDataset("ovmerdplus", "OV-MERD+", "ovmerdplus-process", "ovlabel.csv", "all", 532, "openset",
               subtitle_file="subtitle_eng.csv", subtitle_column="sentence"),
)}
ALIASES = {"iemocap": "iemocapfour", "ovmerd-plus": "ovmerdplus", "ovmerd+": "ovmerdplus"}


def resolve_dataset(name: str) -> MerDataset:
    """The dataset for a results-folder name (`iemocapfour`) or task name (`iemocap`, `ovmerd-plus`)."""
    key = ALIASES.get(name.lower(), name.lower())
    if key not in MER_DATASETS:
        raise KeyError(f"unknown MER-UniBench dataset {name!r}; known: {sorted(MER_DATASETS)}")
    return MER_DATASETS[key]


def _require_npz(path: Path, what: str) -> None:
    """Only .npz (zip) archives are opened, so even with `allow_pickle` a bare pickle file is never loaded."""
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: not a readable {what} (expected an .npz archive)")


def _load_npz_split(path: Path, split: str, allow_pickle: bool) -> dict[str, dict]:
    if not path.is_file():
        raise FileNotFoundError(f"label file not found: {path}")
    _require_npz(path, "label .npz")
    try:
        with np.load(path, allow_pickle=allow_pickle) as data:
            files = list(data.files)
            array = data[split] if split in files else None
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise ValueError(f"{path} holds pickled objects (AffectGPT label files do); pass allow_pickle=True "
                             "only if you trust the file") from exc
        raise ValueError(f"{path}: not a readable label .npz ({exc})") from exc
    except (OSError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError) as exc:
        raise ValueError(f"{path}: not a readable label .npz ({exc})") from exc
    if array is None:
        raise ValueError(f"{path}: no split {split!r}; the file has {files}")
    corpus = array.item() if array.shape == () else None
    if not isinstance(corpus, dict) or not all(isinstance(v, dict) for v in corpus.values()):
        raise ValueError(f"{path}: split {split!r} is not a dict of clip → {{'emo', 'val'}} entries")
    return corpus


def _field(path: Path, name: str, entry: dict, field: str) -> Any:
    if field not in entry:
        raise ValueError(f"{path}: clip {name!r} has no {field!r} field")
    return entry[field]


def _ovlabels(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise FileNotFoundError(f"label file not found: {path}")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not {"name", "openset"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: expected columns 'name' and 'openset'; found {reader.fieldnames}")
        return {row["name"]: ", ".join(split_label_list(row["openset"])) or "neutral" for row in reader}


def load_labels(data_root: str | Path, dataset: str, allow_pickle: bool = False) -> dict[str, str | float]:
    """Clip → ground truth of the published test split: an emotion word (HIT sets), a float `val` (sentiment
    sets) or an open-set list string (OV-MERD+; an empty set becomes 'neutral', as upstream). The split size must
    equal the published count (benchmarks.md §1.9), else ValueError naming the file and both counts."""
    spec = resolve_dataset(dataset)
    path = spec.label_path(data_root)
    if spec.kind == "openset":
        labels: dict[str, str | float] = dict(_ovlabels(path))
    else:
        split = spec.split.split(":")[0]
        corpus = _load_npz_split(path, split, allow_pickle)
        if spec.split.endswith(":session5"):
            corpus = {n: e for n, e in corpus.items() if len(n) > 4 and n[4] == "5"}
        labels = {}
        for name, entry in corpus.items():
            if spec.kind == "sentiment":
                value = _field(path, name, entry, "val")
                try:
                    labels[name] = float(value)
                except (TypeError, ValueError):
                    raise ValueError(f"{path}: clip {name!r} has a non-numeric 'val' {value!r}") from None
                continue
            emo = _field(path, name, entry, "emo")
            if spec.classes is None:
                if not isinstance(emo, str):
                    raise ValueError(f"{path}: clip {name!r} has a non-string 'emo' {emo!r}")
                labels[name] = emo
            elif isinstance(emo, (int, np.integer)) and 0 <= int(emo) < len(spec.classes):
                labels[name] = spec.classes[int(emo)]
            else:
                raise ValueError(f"{path}: clip {name!r} has 'emo' {emo!r}, not an index into {spec.classes}")
    if len(labels) != spec.count:
        raise ValueError(f"{path}: {spec.title} split {spec.split!r} has {len(labels)} clips, expected "
                         f"{spec.count} (the published MER-UniBench split)")
    return labels


class CheckpointOutputs(TypedDict):
    """One checkpoint's released files: raw answers (path), and the loaded extraction caches (None if absent)."""

    answers: Path | None
    openset: dict[str, str] | None
    sentiment: dict[str, str] | None
    openset_file: Path
    sentiment_file: Path


def _load_cache(path: Path, allow_pickle: bool) -> dict[str, str] | None:
    if not path.is_file():
        return None
    _require_npz(path, "extraction cache")
    try:
        with np.load(path, allow_pickle=allow_pickle) as data:
            if not {"filenames", "fileitems"} <= set(data.files):
                raise ValueError(f"{path}: expected arrays 'filenames' and 'fileitems'; found {data.files}")
            names, items = data["filenames"], data["fileitems"]
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise ValueError(f"{path} holds pickled objects; pass allow_pickle=True only if you trust it") from exc
        raise
    except (OSError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError) as exc:
        raise ValueError(f"{path}: not a readable extraction cache ({exc})") from exc
    if len(names) != len(items):
        raise ValueError(f"{path}: {len(names)} filenames but {len(items)} fileitems")
    return {str(n): str(i) for n, i in zip(names.tolist(), items.tolist())}


def _run_folder(results_dir: Path, dataset: MerDataset, run: str | None) -> Path:
    candidates = [results_dir / f"results-{dataset.name}", results_dir / "output" / f"results-{dataset.name}"]
    base = next((c for c in candidates if c.is_dir()), None)
    if base is None:
        raise FileNotFoundError(f"no results folder for {dataset.title}: expected {candidates[0]}")
    if run is not None:
        if not (base / run).is_dir():
            raise FileNotFoundError(f"run folder not found: {base / run}")
        return base / run
    runs = sorted(p for p in base.iterdir() if p.is_dir())
    if len(runs) != 1:
        raise ValueError(f"{base}: found {len(runs)} run folders {[p.name for p in runs]}; name one with run=...")
    return runs[0]


def read_affectgpt_results(results_dir: str | Path, dataset: str, run: str | None = None,
                           allow_pickle: bool = False) -> dict[str, CheckpointOutputs]:
    """Checkpoints (sorted by name) of AffectGPT's `results-<dataset>/<run>/<checkpoint>.npz` layout with the
    `-openset.npz` / `-openset-sentiment.npz` caches loaded. A checkpoint with only caches counts too (upstream
    globs the raw answer files); the raw answers are returned as a path, never unpickled here."""
    spec = resolve_dataset(dataset)
    folder = _run_folder(Path(results_dir), spec, run)
    stems: dict[str, Path | None] = {}
    for path in folder.glob("*.npz"):
        name = path.name
        if name.endswith(SENTIMENT_SUFFIX):
            stems.setdefault(name[: -len(SENTIMENT_SUFFIX)], None)
        elif name.endswith(OPENSET_SUFFIX):
            stems.setdefault(name[: -len(OPENSET_SUFFIX)], None)
        elif "openset" not in name and "sentiment" not in name:
            stems[path.stem] = path
    if not stems:
        raise FileNotFoundError(f"{folder}: no checkpoint .npz files")
    out: dict[str, CheckpointOutputs] = {}
    for stem in sorted(stems):
        openset_file, sentiment_file = folder / f"{stem}{OPENSET_SUFFIX}", folder / f"{stem}{SENTIMENT_SUFFIX}"
        out[stem] = CheckpointOutputs(answers=stems[stem], openset=_load_cache(openset_file, allow_pickle),
                                      sentiment=_load_cache(sentiment_file, allow_pickle),
                                      openset_file=openset_file, sentiment_file=sentiment_file)
    return out


def _score_dataset(spec: MerDataset, labels: dict[str, str | float], checkpoints: dict[str, CheckpointOutputs],
                   wheels: EmotionWheels | None, select: str) -> dict[str, object]:
    def score(stem: str, with_confusion: bool = False) -> dict[str, Any]:
        files = checkpoints[stem]
        cache = files["sentiment_file"] if spec.kind == "sentiment" else files["openset_file"]
        if files["sentiment" if spec.kind == "sentiment" else "openset"] is None:
            raise FileNotFoundError(f"extraction cache missing: {cache} (scoring without a model needs it)")
        return score_checkpoint(spec.kind, labels, wheels, files["openset"], files["sentiment"], source=str(cache),
                                with_confusion=with_confusion)

    per_checkpoint = {stem: score(stem) for stem in checkpoints}
    winner = select_checkpoint({s: v["primary"] for s, v in per_checkpoint.items()}, select)
    best = score(winner, with_confusion=True)
    secondary = ({"ACC": best["acc"]} if spec.kind == "sentiment" else
                 {"Precision_s": best["precision"], "Recall_s": best["recall"]} if spec.kind == "openset" else {})
    return {"dataset": spec.name, "title": spec.title, "metric": spec.metric, "value": best["primary"],
            "secondary": secondary, "checkpoint": winner, "select": select, "n_clips": len(labels),
            "per_checkpoint": per_checkpoint, "confusion": best["confusion"]}


def score_released(results_dir: str | Path, data_root: str | Path, wheel_dir: str | Path | None,
                   datasets: Sequence[str], select: str = "best", *, allow_pickle: bool = False,
                   run: str | None = None) -> dict[str, dict[str, object]]:
    """Rescore released extraction caches against the labels, no model involved: per dataset the primary metric
    (0–100) of the checkpoint chosen by `select` (best / last / a name), its secondary metrics, which checkpoint
    won, every checkpoint's scores and the winner's confusion matrices. `allow_pickle` opts into unpickling the
    label files (and object-array caches, if any)."""
    specs = [resolve_dataset(d) for d in datasets]
    wheels = None
    if any(s.kind != "sentiment" for s in specs):
        if wheel_dir is None:
            raise ValueError("wheel_dir is required to score HIT / Fs datasets (AffectGPT emotion_wheel/ folder)")
        wheels = load_wheels(wheel_dir)
    results: dict[str, dict[str, object]] = {}
    for spec in specs:
        labels = load_labels(data_root, spec.name, allow_pickle=allow_pickle)
        checkpoints = read_affectgpt_results(results_dir, spec.name, run=run, allow_pickle=allow_pickle)
        results[spec.name] = _score_dataset(spec, labels, checkpoints, wheels, select)
    return results

