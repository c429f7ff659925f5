"""Building the frozen MEP-Bench files from a user's OV-MERD copy, and the loader that reads them.

OPPO paper §2.1–2.2: 300 cue-rich OV-MERD clips; reference cues are extracted from the human `reason`
descriptions by an LLM annotator. Our build is model-independent (no evaluated model's answers are
looked at, unlike the authors' filtered probe files): a clip is eligible when its description yields
at least `min_cues` video cues and `min_cues` audio cues and its video and audio files exist; if more
than `size` clips are eligible, a seeded shuffle picks `size` of them. Each selected clip also gets absent-cue
negatives per modality for the faithfulness probes: reference cues of that modality from other clips whose best
cosine to every cue of this clip stays below `negative_max_similarity` under the build's embedder, in a seeded
order. The result is written once and every later evaluation reads the same files.
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

import numpy as np

from mepbench.media import file_hash
from mepbench.scoring.cues import MODALITY_KEYS, CueExtractor, ExtractionResult
from mepbench.scoring.embedding import DEFAULT_EMBEDDER, Embedder, make_embedder
from mepbench.tasks.base import LoadResult, TaskContext
from mepbench.tasks.loaders import load_manifest

BUILD_VERSION = 2  # 2: absent-cue negatives per clip
FROZEN_DIR = "mep-bench"
PROBED = ("video", "audio")
NEGATIVES_STORED = 4  # per clip and modality; the task asks the first `negatives_per_modality`
# MiniLM's calibrated τ (0.46, docs/perception.md) minus 0.1: a negative is no paraphrase of any cue of its clip
NEGATIVE_MAX_SIMILARITY = 0.36


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


def draw_negatives(cues: dict[str, ExtractionResult], chosen: list[str], embedder: Embedder, *, seed: int,
                   per_modality: int = NEGATIVES_STORED, max_similarity: float = NEGATIVE_MAX_SIMILARITY
                   ) -> dict[str, dict[str, list[str]]]:
    """Per chosen clip and probed modality, up to `per_modality` cues of that modality taken from the other clips'
    reference cues (every clip with a successful extraction), none within `max_similarity` cosine of any cue of the
    clip, in an order seeded by (seed, clip, modality). Looks at no model's answers."""
    owners: dict[str, dict[str, set[str]]] = {m: {} for m in PROBED}
    for name, result in cues.items():
        for m in PROBED:
            for cue in result.cues.get(m) if result.ok else ():
                owners[m].setdefault(cue, set()).add(name)
    pools = {m: sorted(owners[m]) for m in PROBED}
    own = {n: sorted({c for m in MODALITY_KEYS for c in cues[n].cues.get(m)}) for n in chosen}
    texts = sorted({t for pool in pools.values() for t in pool} | {t for ts in own.values() for t in ts})
    vectors = dict(zip(texts, embedder.encode(texts))) if texts else {}
    out: dict[str, dict[str, list[str]]] = {}
    for name in chosen:
        mine = np.stack([vectors[t] for t in own[name]]) if own[name] else None
        lowered = {t.lower() for t in own[name]}
        out[name] = {}
        for m in PROBED:
            candidates = [t for t in pools[m] if name not in owners[m][t] and t.lower() not in lowered]
            if mine is not None and candidates:
                nearest = (np.stack([vectors[t] for t in candidates]) @ mine.T).max(axis=1)
                candidates = [t for t, s in zip(candidates, nearest) if s < max_similarity]
            random.Random(f"{seed}:{name}:{m}").shuffle(candidates)
            out[name][m] = candidates[:per_modality]
    return out


def build_mep_bench(data_root: Path, extractor: CueExtractor, extractor_id: str, *, out_dir: Path | None = None,
                    size: int = 300, seed: int = 0, min_cues: int = 2, embedder: str = DEFAULT_EMBEDDER,
                    negative_max_similarity: float = NEGATIVE_MAX_SIMILARITY,
                    layout: OVMERDLayout = OVMERDLayout()) -> dict[str, Any]:
    """Extract reference cues from every description, select the clips, draw their absent-cue negatives with
    `embedder` and write the frozen files (`cues.jsonl` for all clips, `manifest.jsonl` for the selection,
    `build.json`); returns build.json."""
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
    negatives = draw_negatives(dict(zip(names, results)), chosen, make_embedder(embedder), seed=seed,
                               max_similarity=negative_max_similarity)
    rows = [{"id": n, "video": str(media[n][0].resolve()), "audio": str(media[n][1].resolve()),
             "subtitle": subtitles.get(n, ""), "label": labels.get(n), "reasoning": by_name[n][0],
             "cues": by_name[n][1].cues.to_dict(), "absent": negatives[n]} for n in chosen]
    with open(out / "manifest.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    build = {"version": BUILD_VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "extractor": extractor_id,
             "rule": {"size": size, "seed": seed, "min_cues_per_modality": min_cues},
             "negatives": {"embedder": embedder, "max_similarity": negative_max_similarity,
                           "per_modality": NEGATIVES_STORED, "source": "other clips' reference cues",
                           "short": {m: sum(len(negatives[n][m]) < NEGATIVES_STORED for n in chosen) for m in PROBED}},
             "sources": {layout.descriptions: file_hash(data_root / layout.descriptions)},
             "counts": {"descriptions": len(names), "extraction_failed": sum(not r.ok for r in results),
                        "media_missing": len(names) - len(present), "eligible": len(eligible),
                        "selected": len(chosen)},
             "manifest_sha256": hashlib.sha256((out / "manifest.jsonl").read_bytes()).hexdigest()}
    (out / "build.json").write_text(json.dumps(build, indent=2), encoding="utf-8")
    return build


def load_mep_bench(context: TaskContext, limit: int | None = None, **_: Any) -> LoadResult:
    """The frozen benchmark under `--data-root` (written by `mepbench build mep-bench`)."""
    if context.data_root is None:
        raise FileNotFoundError("mep-bench needs --data-root: the OV-MERD folder where `mepbench build mep-bench` "
                                "wrote mep-bench/manifest.jsonl")
    manifest = context.data_root / FROZEN_DIR / "manifest.jsonl"
    rebuild = f"run `mepbench build mep-bench --data-root {context.data_root}`"
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest} not found: {rebuild} first")
    build = manifest.with_name("build.json")
    try:
        version = json.loads(build.read_text(encoding="utf-8")).get("version")
    except (OSError, ValueError) as exc:
        raise ValueError(f"{build}: unreadable build record ({exc}); {rebuild} again") from exc
    if not isinstance(version, int) or version < BUILD_VERSION:
        raise ValueError(f"{build}: built by an older mepbench (version {version}, need {BUILD_VERSION}: absent-cue "
                         f"negatives for the probes); {rebuild} again (cached judge answers are reused)")
    return load_manifest(context, str(manifest), require=("video", "audio"), limit=limit)
