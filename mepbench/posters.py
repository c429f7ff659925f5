"""Poster frames: the middle frame of each clip as a small JPEG named by the clip's content hash, written into the run
directory at evaluation time so the report shows clips without the data (decoded in worker processes when many)."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

POSTER_DIR = "posters"
POSTER_SIZE = 96
POSTER_QUALITY = 70
SERIAL_LIMIT = 8  # fewer clips than this are decoded in-process (a worker pool costs more than it saves)


def _write_poster(job: tuple[Path, Path]) -> bool:
    from PIL import Image

    from mepbench.media import MediaError, decode_video

    video, target = job
    try:
        frame = decode_video(video, num_frames=1, size=POSTER_SIZE)[0]
    except MediaError:
        return False
    tmp = target.with_suffix(".tmp")
    Image.fromarray(frame).save(tmp, format="JPEG", quality=POSTER_QUALITY)
    tmp.replace(target)
    return True


def make_posters(videos: list[str], folder: Path, workers: int | None = None) -> dict[str, str]:
    """Poster frames of the existing `videos` in `folder`, as `{video path: file name}` (`<sha256[:20]>.jpg` of the
    clip's bytes, so equal clips share one); clips that cannot be decoded get no entry."""
    from mepbench.media import file_hash

    existing = {v: Path(v).expanduser() for v in dict.fromkeys(videos) if v and Path(v).expanduser().is_file()}
    if not existing:
        return {}
    folder.mkdir(parents=True, exist_ok=True)
    names = {v: f"{file_hash(p)[:20]}.jpg" for v, p in existing.items()}
    jobs = {names[v]: (p, folder / names[v]) for v, p in existing.items()}
    todo = [name for name, (_, target) in jobs.items() if not target.is_file()]
    done = dict.fromkeys(jobs, True)
    if len(todo) > SERIAL_LIMIT:
        with ProcessPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
            done.update(zip(todo, pool.map(_write_poster, [jobs[n] for n in todo], chunksize=16)))
    else:
        done.update((n, _write_poster(jobs[n])) for n in todo)
    return {v: names[v] for v in existing if done[names[v]]}
