"""Writing the mep-synth suite: per-clip mp4 (h264 + AAC) and wav files, manifest.jsonl and suite.json.

Each clip is drawn from its own seed sequence (seed, index), so clips do not depend on each other or on
`n`. The suite is built in a hidden sibling directory and renamed into place only when complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from mepbench.synth.cues import ClipSpec, absent_cues, decided_by, reasoning, sample_clip
from mepbench.synth.faces import FPS, SIZE, random_style, render_frames
from mepbench.synth.voice import SAMPLE_RATE, render_voice

SUITE_VERSION = "4"  # 3: `absent` cue truth per clip; 4: faces with optional cues beside each emotion's core cue
_AAC_FRAME = 1024


def clip_id(index: int) -> str:
    """The id of clip `index` (also the stem of its media files)."""
    return f"synth-{index:05d}"


def clip_rngs(seed: int, index: int) -> tuple[np.random.Generator, ...]:
    """Independent generators for the clip's content, face style, voice and absent-cue order (a child added later
    leaves the earlier ones, and so the clips, unchanged)."""
    children = np.random.SeedSequence([seed, index]).spawn(4)
    return tuple(np.random.default_rng(c) for c in children)


def render_clip(seed: int, index: int) -> tuple[ClipSpec, np.ndarray, np.ndarray]:
    """Clip `index` of the suite with `seed`: its spec, frames (T, H, W, 3) uint8 and float32 audio."""
    spec_rng, face_rng, voice_rng, _ = clip_rngs(seed, index)
    spec = sample_clip(spec_rng)
    frames = render_frames(spec.cues["video"], random_style(face_rng))
    wave = render_voice(spec.cues["audio"], voice_rng)
    return spec, frames, wave


def write_mp4(path: Path, frames: np.ndarray, wave: np.ndarray) -> None:
    """Encode frames as h264/yuv420p at FPS and `wave` as a mono AAC track, with PyAV only."""
    import av

    with av.open(str(path), "w", format="mp4") as container:
        # x264's macroblock-tree lookahead made repeated encodes of these tiny frames differ; off, they repeat.
        options = {"preset": "veryfast", "crf": "20", "x264-params": "mbtree=0"}
        video = container.add_stream("libx264", rate=FPS, options=options)
        video.width, video.height, video.pix_fmt = SIZE, SIZE, "yuv420p"
        video.codec_context.thread_count = 1
        audio = container.add_stream("aac", rate=SAMPLE_RATE, layout="mono")
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        for start in range(0, len(wave), _AAC_FRAME):
            chunk = wave[start:start + _AAC_FRAME]
            frame = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = SAMPLE_RATE, start, Fraction(1, SAMPLE_RATE)
            container.mux(audio.encode(frame))
        container.mux(audio.encode(None))


def _record(index: int, spec: ClipSpec, absent_rng: np.random.Generator) -> dict[str, Any]:
    cid = clip_id(index)
    return {
        "id": cid,
        "video": f"clips/{cid}.mp4",
        "audio": f"clips/{cid}.wav",
        "subtitle": spec.subtitle,
        "label": spec.label,
        "reasoning": reasoning(spec),
        "cues": {m: list(c) for m, c in spec.cues.items()},
        "absent": {m: list(c) for m, c in absent_cues(spec, absent_rng).items()},
        "metadata": {"conditions": dict(spec.conditions), "conflict_emotion": dict(spec.conflict_emotion),
                     "decided_by": decided_by(spec)},
    }


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _is_complete(root: Path, n: int, seed: int) -> bool:
    """Whether `root` holds this exact suite: matching suite.json, manifest hash and every clip file."""
    try:
        info = json.loads((root / "suite.json").read_text())
        manifest = root / "manifest.jsonl"
        if (info.get("version"), info.get("n"), info.get("seed")) != (SUITE_VERSION, n, seed):
            return False
        if info.get("manifest_sha256") != _sha256(manifest):
            return False
    except (OSError, ValueError):
        return False
    clips = root / "clips"
    return all((clips / f"{clip_id(i)}{ext}").is_file() for i in range(n) for ext in (".mp4", ".wav"))


def _build(tmp: Path, n: int, seed: int) -> None:
    clips = tmp / "clips"
    clips.mkdir()
    lines = []
    for i in range(n):
        spec, frames, wave = render_clip(seed, i)
        write_mp4(clips / f"{clip_id(i)}.mp4", frames, wave)
        sf.write(str(clips / f"{clip_id(i)}.wav"), wave, SAMPLE_RATE, subtype="PCM_16")
        lines.append(json.dumps(_record(i, spec, clip_rngs(seed, i)[3]), ensure_ascii=False))
    manifest = tmp / "manifest.jsonl"
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    info = {"version": SUITE_VERSION, "n": n, "seed": seed, "manifest_sha256": _sha256(manifest)}
    (tmp / "suite.json").write_text(json.dumps(info, indent=2) + "\n")


def _install(tmp: Path, root: Path) -> None:
    """Move the finished suite into place, replacing a stale suite but never a foreign directory."""
    if root.exists() and any(root.iterdir()):
        if not (root / "suite.json").is_file():
            raise FileExistsError(f"{root} exists and is not a mep-synth suite; refusing to replace it")
        stale = Path(tempfile.mkdtemp(prefix=f".{root.name}.old-", dir=root.parent))
        os.replace(root, stale / root.name)
        shutil.rmtree(stale)
    os.replace(tmp, root)


def generate_suite(out_dir: str | os.PathLike, n: int = 200, seed: int = 0) -> Path:
    """Generate (or reuse) the n-clip suite for `seed` under `out_dir` and return its root.

    Reuses an existing suite with the same version, n, seed and manifest hash; otherwise builds into a
    temporary sibling directory and renames it into place, so an interrupted run never looks complete.
    """
    if n < 1 or seed < 0:
        raise ValueError(f"need n >= 1 and seed >= 0, got n={n}, seed={seed}")
    root = Path(out_dir)
    if _is_complete(root, n, seed):
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    try:
        _build(tmp, n, seed)
        try:
            _install(tmp, root)
        except OSError:
            if not _is_complete(root, n, seed):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root
