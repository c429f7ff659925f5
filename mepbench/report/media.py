"""Media for the sample explorer: poster-frame thumbnails written once as small JPEG files beside the pages
(decoded in worker processes, named by the clip's path, size and mtime so a rebuild reuses them), and file
URIs for players that reference the original audio and video."""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ProcessPoolExecutor
from functools import cache
from pathlib import Path

THUMB_SIZE = 96
THUMB_QUALITY = 70
MEDIA_DIR = "media"
SERIAL_LIMIT = 8  # fewer clips than this are decoded in-process (a worker pool costs more than it saves)


@cache
def file_uri(path: str | None) -> str | None:
    """An absolute `file://` URI for an existing file, else None (memoised: runs share their clips)."""
    if not path:
        return None
    p = Path(path).expanduser().absolute()
    return p.as_uri() if p.is_file() else None


def _name(path: Path) -> str:
    st = path.stat()
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{THUMB_SIZE}"
    return hashlib.sha256(key.encode()).hexdigest()[:20] + ".jpg"


def _write_thumbnail(job: tuple[Path, Path]) -> bool:
    from PIL import Image

    from mepbench.media import MediaError, decode_video

    video, target = job
    try:
        frame = decode_video(video, num_frames=1, size=THUMB_SIZE)[0]
    except MediaError:
        return False
    tmp = target.with_suffix(".tmp")
    Image.fromarray(frame).save(tmp, format="JPEG", quality=THUMB_QUALITY)
    tmp.replace(target)
    return True


def make_thumbnails(videos: list[str], out_dir: Path, workers: int | None = None) -> dict[str, str]:
    """Poster frames (the middle frame) of the existing `videos`, as `{path: href relative to out_dir}`;
    clips that cannot be decoded get no entry."""
    existing = {v: Path(v).expanduser() for v in dict.fromkeys(videos) if v and Path(v).expanduser().is_file()}
    if not existing:
        return {}
    folder = out_dir / MEDIA_DIR
    folder.mkdir(parents=True, exist_ok=True)
    names = {v: _name(p) for v, p in existing.items()}
    jobs = {names[v]: (p, folder / names[v]) for v, p in existing.items()}
    todo = [name for name, (_, target) in jobs.items() if not target.is_file()]
    done = dict.fromkeys(jobs, True)
    if len(todo) > SERIAL_LIMIT:
        with ProcessPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
            done.update(zip(todo, pool.map(_write_thumbnail, [jobs[n] for n in todo], chunksize=16)))
    else:
        done.update((n, _write_thumbnail(jobs[n])) for n in todo)
    return {v: f"{MEDIA_DIR}/{names[v]}" for v in existing if done[names[v]]}
