"""Building the frozen MEP-Bench files from a user's OV-MERD copy, and the loader that reads them.

OPPO paper §2.1–2.2: 300 cue-rich OV-MERD clips; reference cues are extracted from the human `reason`
descriptions by an LLM annotator. Our build is model-independent (no evaluated model's answers are
looked at, unlike the authors' filtered probe files): a clip is eligible when its description yields
at least `min_cues` video cues and `min_cues` audio cues and its video and audio files exist; if more
than `size` clips are eligible, a seeded shuffle picks `size` of them. The result is written once and
every later evaluation reads the same files.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mepbench.media import file_hash
from mepbench.scoring.cues import CueExtractor, ExtractionResult
from mepbench.tasks.base import LoadResult, TaskContext
from mepbench.tasks.loaders import load_manifest, register_loader

BUILD_VERSION = 1
FROZEN_DIR = "mep-bench"


@dataclass(frozen=True)
class OVMERDLayout:
    """Where the OV-MERD files live under the data root (names as distributed in HF MERChallenge/MER2025)."""

    descriptions: str = "track3_train_ovmerd.csv"
    labels: str = "track2_train_ovmerd.csv"
    subtitles: str = "subtitle_eng.csv"
    video_dir: str = "video"
    audio_dir: str = "audio"
    video_ext: str = ".mp4"
    audio_ext: str = ".wav"


def _read_csv(path: Path, needed: tuple[str, ...]) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"OV-MERD file not found: {path}")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; found {list(frame.columns)}")
    return frame


def _subtitles(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    column = next((c for c in ("english", "sentence", "subtitle") if c in frame.columns), None)
    if column is None or "name" not in frame.columns:
        raise ValueError(f"{path}: need a name column and one of english/sentence/subtitle")
    return dict(zip(frame["name"], frame[column]))


def _labels(path: Path) -> dict[str, list[str]]:
    if not path.is_file():
        return {}
    frame = _read_csv(path, ("name", "openset"))
    return {n: [w.strip() for w in v.strip("[]").split(",") if w.strip()] for n, v in zip(frame["name"], frame["openset"])}


def eligible_clips(candidates: dict[str, ExtractionResult], min_cues: int) -> list[str]:
    """Clips whose extraction succeeded with at least `min_cues` video and `min_cues` audio cues, sorted."""
    return sorted(n for n, r in candidates.items()
                  if r.ok and len(r.cues.video) >= min_cues and len(r.cues.audio) >= min_cues)


def select_clips(eligible: list[str], size: int, seed: int) -> list[str]:
    """A seeded shuffle of the sorted eligible names keeps `size`; returned sorted."""
    order = sorted(eligible)
    random.Random(seed).shuffle(order)
    return sorted(order[:size])


def build_mep_bench(data_root: Path, extractor: CueExtractor, extractor_id: str, *, out_dir: Path | None = None,
                    size: int = 300, seed: int = 0, min_cues: int = 2,
                    layout: OVMERDLayout = OVMERDLayout()) -> dict[str, Any]:
    """Extract reference cues from every description, select the clips and write the frozen files
    (`cues.jsonl` for all clips, `manifest.jsonl` for the selection, `build.json`); returns build.json."""
    data_root = Path(data_root)
    out = Path(out_dir) if out_dir else data_root / FROZEN_DIR
    descriptions = _read_csv(data_root / layout.descriptions, ("name", "reason"))
    names, reasons = list(descriptions["name"]), list(descriptions["reason"])
    results = extractor.extract_many(reasons, names)
    media = {n: (data_root / layout.video_dir / f"{n}{layout.video_ext}",
                 data_root / layout.audio_dir / f"{n}{layout.audio_ext}") for n in names}
    present = {n: r for n, r in zip(names, results) if all(p.is_file() for p in media[n])}
    eligible = eligible_clips(present, min_cues)
    chosen = select_clips(eligible, size, seed)
    subtitles, labels = _subtitles(data_root / layout.subtitles), _labels(data_root / layout.labels)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "cues.jsonl", "w", encoding="utf-8") as f:
        for n, reason, r in zip(names, reasons, results):
            f.write(json.dumps({"id": n, "ok": r.ok, "error": r.error, "cues": r.cues.to_dict(),
                                "media_present": n in present}) + "\n")
    by_name = dict(zip(names, zip(reasons, results)))
    rows = [{"id": n, "video": str(media[n][0].resolve()), "audio": str(media[n][1].resolve()),
             "subtitle": subtitles.get(n, ""), "label": labels.get(n), "reasoning": by_name[n][0],
             "cues": by_name[n][1].cues.to_dict()} for n in chosen]
    with open(out / "manifest.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    build = {"version": BUILD_VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "extractor": extractor_id,
             "rule": {"size": size, "seed": seed, "min_cues_per_modality": min_cues},
             "sources": {layout.descriptions: file_hash(data_root / layout.descriptions)},
             "counts": {"descriptions": len(names), "extraction_failed": sum(not r.ok for r in results),
                        "media_missing": len(names) - len(present), "eligible": len(eligible),
                        "selected": len(chosen)},
             "manifest_sha256": hashlib.sha256((out / "manifest.jsonl").read_bytes()).hexdigest()}
    (out / "build.json").write_text(json.dumps(build, indent=2), encoding="utf-8")
    return build


@register_loader("mep-bench")
def load_mep_bench(context: TaskContext, limit: int | None = None, **_: Any) -> LoadResult:
    """The frozen benchmark under `--data-root` (written by `mepbench build mep-bench`)."""
    if context.data_root is None:
        raise FileNotFoundError("mep-bench needs --data-root: the OV-MERD folder where `mepbench build mep-bench` "
                                "wrote mep-bench/manifest.jsonl")
    manifest = context.data_root / FROZEN_DIR / "manifest.jsonl"
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest} not found: run `mepbench build mep-bench --data-root "
                                f"{context.data_root}` first")
    return load_manifest(context, str(manifest), require=("video", "audio"), limit=limit)
