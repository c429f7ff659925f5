"""MME-Emotion data: the released question and audio-clue JSONs, the clips of the dataset download, and
the judge's frames (benchmarks.md §4.1, §4.2, §4.6).

Layout read under `--data-root` (the GitHub annotation folder and the HF video download side by side):
`[MME-Emotion-Dataset/]<Task>/question/<Task_>.json`, `.../audio_clue/<Task_>_qwen2_audio_clues.json`, and
each clip at its `video_id` (e.g. `IEMOCAP/video/Ses05M_script01_1_F034.mp4`) under `<Task>/`, `<Task_>/`,
the data root itself or `MME-Emotion-Dataset/<Task>/`.

Upstream defect fixed: the ER-Lab judge script opens `video_id + ".mp4"` although every ER-Lab `video_id`
already ends in `.mp4`, so every ER-Lab sample was "Video file missing" and dropped unless the files were
renamed. We open `video_id` as released for every task, and also accept a copy renamed to `<id>.mp4.mp4`
for the upstream script.
"""

from __future__ import annotations

import json
import os
import shutil
from functools import lru_cache
from pathlib import Path
from typing import Any

from mepbench.media import MediaError, file_hash
from mepbench.scoring.mme import RULES, MMERule
from mepbench.tasks.base import LoadResult, TaskContext
from mepbench.types import Sample, SampleError

VIDEO_EXTS = (".mp4", ".avi", ".mkv")
ANNOTATION_DIR = "MME-Emotion-Dataset"


def rule_for(task: str) -> MMERule:
    """The protocol rule of an MME-Emotion task name (ER-Lab … IR); unknown names are an error."""
    if task not in RULES:
        raise ValueError(f"unknown MME-Emotion task {task!r}; known: {', '.join(RULES)}")
    return RULES[task]


def annotation_file(root: Path, task: str, kind: str) -> Path:
    """The question (`kind="question"`) or audio-clue JSON of `task` under `root`, else FileNotFoundError
    naming every place looked at."""
    stem = task.replace("-", "_")
    name = f"{stem}.json" if kind == "question" else f"{stem}_qwen2_audio_clues.json"
    candidates = [base / task / kind / name for base in (root / ANNOTATION_DIR, root)]
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(f"MME-Emotion {task} {kind} file not found; looked for "
                            f"{', '.join(map(str, candidates))} (from github.com/FunAudioLLM/MME-Emotion @777e8c3)")


def video_roots(root: Path, task: str) -> list[Path]:
    """Folders a task's `video_id`s are resolved against, in order."""
    return [root / task, root / task.replace("-", "_"), root, root / ANNOTATION_DIR / task]


def find_video(roots: list[Path], video_id: str) -> Path | None:
    """The clip of `video_id`: as released, then renamed for upstream's ER-Lab path (`.mp4.mp4`), then with
    another of .mp4/.avi/.mkv (a converted copy)."""
    stem, dot, ext = video_id.rpartition(".")
    names = [video_id, f"{video_id}.mp4"]
    if dot and f".{ext.lower()}" in VIDEO_EXTS:
        names += [f"{stem}{e}" for e in VIDEO_EXTS if e != f".{ext.lower()}"]
    for root in roots:
        for name in names:
            if (root / name).is_file():
                return root / name
    return None


@lru_cache(maxsize=16384)
def _has_audio(path: str, mtime_ns: int) -> bool:
    import av

    try:
        with av.open(path) as container:
            return bool(container.streams.audio)
    except Exception:  # an undecodable container fails later, with its name, when the model reads it
        return True


def has_audio_stream(path: Path) -> bool:
    """Whether a clip carries an audio track (silent clips get no audio part), memoised per file version."""
    return _has_audio(str(path), path.stat().st_mtime_ns)


def _entries(path: Path) -> list[dict[str, Any]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of entries")
    return data


def _sample(entry: Any, rule: MMERule, clues: dict[str, str], source: Path, roots: list[Path],
            media_required: bool) -> Sample:
    if not isinstance(entry, dict) or not isinstance(entry.get("video_id"), str) or not entry["video_id"]:
        raise SampleError("entry has no video_id", path=str(source), field="video_id")
    vid = entry["video_id"]
    label, label_set = entry.get("label"), entry.get("label_set")
    if not isinstance(label, str) or not label.strip():
        raise SampleError("empty or missing label", sample_id=vid, path=str(source), field="label")
    if not isinstance(label_set, list) or not label_set or not all(isinstance(x, str) for x in label_set):
        raise SampleError("label_set must be a non-empty list of strings", sample_id=vid, path=str(source),
                          field="label_set")
    outside = [g for g in rule.gold(label) if g not in label_set]
    if outside:
        raise SampleError(f"labels {outside} are not in the label set", sample_id=vid, path=str(source),
                          field="label")
    if not clues.get(vid, "").strip():
        raise SampleError("no audio clue for this clip", sample_id=vid, path=str(source), field="audio_clue")
    found = find_video(roots, vid)
    video = found or (roots[0] / vid if media_required else None)
    audio = found if found is not None and has_audio_stream(found) else None
    return Sample(id=vid, video=str(video) if video else None, audio=str(audio) if audio else None,
                  label=label, source=str(source),
                  metadata={"task": rule.name, "label_set": list(label_set), "gold": rule.gold(label),
                            "audio_clue": clues[vid], "corpus": vid.split("/", 1)[0]})


def load_mme_emotion(context: TaskContext, task: str, limit: int | None = None, **_: Any) -> LoadResult:
    """One MME-Emotion task: every question entry with its audio clue and clip; a bad entry becomes a
    SampleError naming file, clip and field. Missing clips stay as paths (the run reports them) unless the
    backend needs no media (replayed answers)."""
    if context.data_root is None:
        raise FileNotFoundError("MME-Emotion needs --data-root: the folder holding MME-Emotion-Dataset/ (question "
                                "and audio-clue JSONs) and the clips of the HF Karl28/MME-Emotion download")
    rule = rule_for(task)
    questions = annotation_file(context.data_root, task, "question")
    clue_file = annotation_file(context.data_root, task, "audio_clue")
    clues = {str(e.get("video_id")): str(e.get("audio_clue") or "") for e in _entries(clue_file)}
    roots = video_roots(context.data_root, task)
    result = LoadResult()
    for i, entry in enumerate(_entries(questions)[:limit]):
        try:
            result.samples.append(_sample(entry, rule, clues, questions, roots, context.media_required))
        except SampleError as err:
            result.errors.append(err if err.sample_id else SampleError(f"entry {i}: {err}", path=str(questions),
                                                                       field=err.field))
    return result


def judge_frames(video: str | Path, cache_dir: Path, max_frames: int = 10, interval_s: float = 1.0) -> list[Path]:
    """JPEG frames the score judge sees: every ⌊fps·interval⌋-th decoded frame from the start, the first
    `max_frames` (upstream `extract_key_frames`: 1 fps, first 10, JPEG quality 95 as OpenCV's default);
    written once per clip content under `cache_dir/mme-frames/`. Raises MediaError."""
    import av
    from PIL import Image

    source = Path(video)
    folder = Path(cache_dir) / "mme-frames" / f"{file_hash(source)[:24]}-n{max_frames}-i{interval_s:g}"
    if folder.is_dir():
        return sorted(folder.glob("*.jpg"))
    tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        with av.open(str(source)) as container:
            if not container.streams.video:
                raise MediaError(source, "no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            if not rate:
                raise MediaError(source, "unknown frame rate")
            step = max(1, int(float(rate) * interval_s))
            kept = 0
            for i, frame in enumerate(container.decode(stream)):
                if i % step == 0:
                    Image.fromarray(frame.to_ndarray(format="rgb24")).save(tmp / f"{kept:03d}.jpg", quality=95)
                    kept += 1
                    if kept == max_frames:
                        break
    except MediaError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    except Exception as exc:  # PyAV raises many error types for damaged containers
        shutil.rmtree(tmp, ignore_errors=True)
        raise MediaError(source, f"cannot decode video frames ({type(exc).__name__}: {exc})") from exc
    if kept == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise MediaError(source, "video has no decodable frames")
    try:
        tmp.rename(folder)
    except OSError:  # another process wrote the same frames first
        shutil.rmtree(tmp, ignore_errors=True)
    return sorted(folder.glob("*.jpg"))
