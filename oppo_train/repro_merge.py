"""One mini-reproduction leaderboard from several written by separate `oppo-train repro` invocations (seeds run on
different machines or sessions): each seed's row metrics are taken as written, and the means, intervals and paired
contrasts are recomputed over the union of seeds, exactly as one invocation over all of them would."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

from oppo_train.repro_table import machine, seed_seconds, write_board, writer_code

# Config fields that may differ between the merged leaderboards: where they ran and what they wrote, not what.
WHERE = ("seeds", "work_dir", "out_dir", "cache_dir", "install_default")


class MergeError(ValueError):
    """Leaderboards that cannot be merged: unreadable, malformed, run under different settings, or sharing a seed."""


def _number_or_none(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value))


def read_board(folder: Path) -> dict[str, Any]:
    """A leaderboard's results.json, checked field by field (errors name the file, the seed, the row, the field)."""
    path = folder / "results.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise MergeError(f"{path}: not a readable leaderboard ({exc})") from exc
    meta = data.get("metadata") if isinstance(data, dict) else None
    if not isinstance(meta, dict) or not all(isinstance(meta.get(k), dict) for k in ("config", "eval_suite", "stages")):
        raise MergeError(f"{path}: metadata.config, metadata.eval_suite and metadata.stages must be objects")
    per_seed = data.get("per_seed")
    if not isinstance(per_seed, dict) or not per_seed:
        raise MergeError(f"{path}: per_seed must be a non-empty object of seed → rows")
    for seed, rows in per_seed.items():
        if not seed.lstrip("-").isdigit() or not isinstance(rows, dict) or not rows:
            raise MergeError(f"{path}: per_seed.{seed} must be an integer seed holding an object of rows")
        for row, cells in rows.items():
            values = cells.get("values") if isinstance(cells, dict) else None
            if not isinstance(values, dict):
                raise MergeError(f"{path}: per_seed.{seed}.{row}.values must be an object")
            bad = sorted(k for k, v in values.items() if not _number_or_none(v))
            if bad:
                raise MergeError(f"{path}: per_seed.{seed}.{row}.values.{bad[0]} is not a finite number or null")
    for part in ("seconds", "commits"):
        if not isinstance(meta["stages"].get(part), dict):
            raise MergeError(f"{path}: metadata.stages.{part} must be an object")
    return data


def _differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return sorted(k for k in set(a) | set(b) if k not in WHERE and a.get(k) != b.get(k))


def merge_boards(folders: list[Path], out: Path) -> Path:
    """Write one leaderboard under `out` (which may be one of `folders`) from the seeds of all `folders`, with each
    seed's HTML report folder; refuse boards of different settings, eval suites or rows, and a seed seen twice."""
    if len(folders) < 2:
        raise MergeError("merge needs at least two leaderboard folders")
    boards = [(folder, read_board(folder)) for folder in folders]
    first_folder, first = boards[0]
    config, suite = first["metadata"]["config"], first["metadata"]["eval_suite"]
    rows = set(next(iter(first["per_seed"].values())))
    per_seed: dict[int, dict[str, Any]] = {}
    owner: dict[int, Path] = {}
    seconds: dict[str, float] = {}
    commits: dict[str, Any] = {}
    for folder, board in boards:
        meta = board["metadata"]
        differ = _differences(config, meta["config"])
        if differ:
            raise MergeError(f"{folder / 'results.json'}: config differs from {first_folder / 'results.json'} in "
                             f"{', '.join(differ)}")
        if meta["eval_suite"] != suite:
            raise MergeError(f"{folder / 'results.json'}: eval suite {meta['eval_suite']} differs from {suite}")
        for key, seed_rows in board["per_seed"].items():
            seed = int(key)
            if seed in owner:
                raise MergeError(f"seed {seed} is in both {owner[seed] / 'results.json'} and "
                                 f"{folder / 'results.json'}")
            if set(seed_rows) != rows:
                raise MergeError(f"{folder / 'results.json'}: per_seed.{key} has rows {sorted(seed_rows)}, "
                                 f"expected {sorted(rows)}")
            per_seed[seed], owner[seed] = seed_rows, folder
        seconds.update(meta["stages"]["seconds"])
        commits.update(meta["stages"]["commits"])
    per_seed = dict(sorted(per_seed.items()))
    sources = [{"folder": str(folder), "seeds": sorted(int(k) for k in board["per_seed"]),
                "leaderboard_written_at": board["metadata"].get("leaderboard_written_at"),
                "machine": board["metadata"].get("machine"), "wall_seconds": board["metadata"].get("wall_seconds")}
               for folder, board in boards]
    metadata = {"config": {**config, "seeds": list(per_seed), "out_dir": str(out)}, "eval_suite": suite,
                "leaderboard_written_at": writer_code(), "machine": machine(), "wall_seconds": None,
                "seed_seconds": seed_seconds(seconds), "stages": {"seconds": seconds, "commits": commits},
                "merged_from": sources}
    reports = [(folder / "site" / f"seed-{seed}", seed) for seed, folder in owner.items()]
    write_board(out, per_seed, metadata)
    for source, seed in reports:
        target = out / "site" / f"seed-{seed}"
        if source.is_dir() and source.resolve() != target.resolve():
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(source, target, ignore=_links)
    return out


def _links(folder: str, names: list[str]) -> list[str]:
    """Symbolic links in a copied report folder: left behind, so a copy never reaches outside its source."""
    return [name for name in names if (Path(folder) / name).is_symlink()]
