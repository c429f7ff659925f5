"""Media for the sample explorer: the poster frames a run recorded (copied from its `posters/` folder beside the
pages) and file URIs for players of the clips the run recorded as present. Only the run directory is read; a
recorded name that is not a poster file name is ignored, so a crafted run cannot make the report read elsewhere."""

from __future__ import annotations

import re
import shutil
from functools import cache
from pathlib import Path

MEDIA_DIR = "media"
POSTER_NAME = re.compile(r"posters/([0-9a-f]{20}\.jpg)")


@cache
def file_uri(path: str | None) -> str | None:
    """An absolute `file://` URI of a recorded media path (memoised: runs share their clips)."""
    if not path:
        return None
    return Path(path).expanduser().absolute().as_uri()


def copy_posters(run_dir: Path, posters: list[str], out_dir: Path) -> dict[str, str]:
    """Copy the recorded `posters` (`posters/<hash>.jpg` inside `run_dir`) into `out_dir/media`, as
    `{recorded name: href relative to out_dir}`; names of another shape and missing files get no entry."""
    root = run_dir.resolve()
    out: dict[str, str] = {}
    for name in dict.fromkeys(posters):
        match = POSTER_NAME.fullmatch(name or "")
        source = root / "posters" / match.group(1) if match else None
        if source is None or not source.is_file() or source.is_symlink():
            continue
        target = out_dir / MEDIA_DIR / match.group(1)
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        out[name] = f"{MEDIA_DIR}/{match.group(1)}"
    return out
