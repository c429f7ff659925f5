"""Published results ("reported") from `leaderboards/reference/`: one row per (model, task, metric) with a
citation key resolved against `sources.yaml`, so every number in a report names the table or figure it came from."""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

import yaml

SOURCES_FILE = "sources.yaml"
ROW_FIELDS = ("model", "task", "metric", "value", "citation")
CITATION_FIELDS = ("short", "title", "authors", "venue", "url", "locator", "evidence")


@dataclass(frozen=True)
class Citation:
    """Where a published number comes from: the paper, the exact table or figure, and how it was read."""

    key: str
    short: str
    title: str
    authors: str
    venue: str
    url: str
    locator: str
    evidence: str


@dataclass(frozen=True)
class ReportedRow:
    """One published value (0–100 scale) of `metric` on `task` (a task or group name) for `model`."""

    model: str
    setting: str
    task: str
    metric: str
    value: float
    n: int | None
    citation: str
    note: str
    source_file: str
    digits: int = 2


@dataclass(frozen=True)
class References:
    """All published rows and the citations they name."""

    rows: tuple[ReportedRow, ...]
    citations: dict[str, Citation]

    def tasks(self) -> list[str]:
        """Task and group names that have published rows, in file order."""
        return list(dict.fromkeys(r.task for r in self.rows))


def default_reference_dir() -> Path | None:
    """`$MEPBENCH_REFERENCE_DIR`, else the installed package data `mepbench._leaderboards` (the folder
    `leaderboards/reference` shipped in the wheel), else that folder in a source checkout, else None."""
    env = os.environ.get("MEPBENCH_REFERENCE_DIR")
    if env:
        return Path(env)
    try:
        packaged = [Path(p) for p in import_module("mepbench._leaderboards").__path__]
    except ModuleNotFoundError:
        packaged = []
    checkout = Path(__file__).resolve().parents[2] / "leaderboards" / "reference"
    return next((p for p in (*packaged, checkout) if (p / SOURCES_FILE).is_file()), None)


def _citations(path: Path) -> dict[str, Citation]:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    out = {}
    for key, entry in data.items():
        missing = [f for f in CITATION_FIELDS if not entry.get(f)]
        if missing:
            raise ValueError(f"{path}: citation {key!r} lacks {missing}")
        if not str(entry["url"]).startswith("https://"):
            raise ValueError(f"{path}: citation {key!r} needs an https:// url")
        out[key] = Citation(key, *(str(entry[f]) for f in CITATION_FIELDS))
    return out


def _records(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    data = json.loads(path.read_text(encoding="utf-8")) if path.suffix == ".json" else \
        yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a list of rows")
    return data


def _row(record: dict[str, Any], path: Path, line: int, citations: dict[str, Citation]) -> ReportedRow:
    where = f"{path.name} row {line}"
    missing = [f for f in ROW_FIELDS if record.get(f) in (None, "")]
    if missing:
        raise ValueError(f"{where}: missing {missing}")
    if record["citation"] not in citations:
        raise ValueError(f"{where}: unknown citation {record['citation']!r} (not in {SOURCES_FILE})")
    value = float(record["value"])
    if not math.isfinite(value):
        raise ValueError(f"{where}: value {record['value']!r} is not a number")
    n = record.get("n")
    text = str(record["value"])
    return ReportedRow(str(record["model"]), str(record.get("setting") or ""), str(record["task"]),
                       str(record["metric"]), value, int(n) if n not in (None, "") else None,
                       str(record["citation"]), str(record.get("note") or ""), path.name,
                       len(text.partition(".")[2]) if "." in text else 0)


def load_references(directory: str | Path | None = None) -> References:
    """Every `*.csv|json|yaml` row file under `directory` (default: `default_reference_dir()`), validated:
    required fields, numeric values, and a citation key present in `sources.yaml`."""
    folder = Path(directory) if directory else default_reference_dir()
    if folder is None or not folder.is_dir():
        return References((), {})
    citations = _citations(folder / SOURCES_FILE) if (folder / SOURCES_FILE).is_file() else {}
    rows: list[ReportedRow] = []
    for path in sorted(folder.iterdir()):
        if path.name == SOURCES_FILE or path.suffix not in (".csv", ".json", ".yaml", ".yml"):
            continue
        rows.extend(_row(rec, path, i + 1, citations) for i, rec in enumerate(_records(path)))
    return References(tuple(rows), citations)
