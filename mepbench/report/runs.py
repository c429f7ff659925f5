"""Run directories as the report sees them: the results document, the samples frame, a unique page id and a
short model name for tables."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mepbench.records import RunResult


@dataclass
class RunData:
    """One run directory loaded for reporting."""

    id: str
    path: Path
    results: dict[str, Any]
    samples: Any
    result: RunResult

    @property
    def config(self) -> dict[str, Any]:
        """The run's EvalConfig as recorded."""
        return self.results.get("config", {})

    @property
    def metadata(self) -> dict[str, Any]:
        """The run's reproducibility metadata."""
        return self.results.get("metadata", {})

    @property
    def tasks(self) -> dict[str, dict[str, Any]]:
        """Per-task aggregates."""
        return self.results.get("tasks", {})

    @property
    def groups(self) -> dict[str, dict[str, Any]]:
        """Per-group scores."""
        return self.results.get("groups", {})

    def main_rows(self, task: str, variant: str = "full") -> Any:
        """The samples-frame rows of `task`'s main question (no probes) under `variant`."""
        frame = self.samples
        return frame[(frame["task"] == task) & (frame["variant"] == variant) & (frame["item"].fillna("") == "")]

    @property
    def model_name(self) -> str:
        """The model as named on the command line; for a filesystem path its last two components."""
        model = str(self.config.get("model") or self.metadata.get("backend") or "model").rstrip("/")
        if model.startswith(("/", ".", "~")):
            return "/".join(Path(model).parts[-2:])
        return model


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "run"


def load_run(directory: str | Path, run_id: str | None = None) -> RunData:
    """Read one run directory (results.json + samples.parquet); nothing outside it."""
    from mepbench.run_dir import load_run as load_typed

    path = Path(directory)
    run = load_typed(path)
    return RunData(run_id or _slug(path.resolve().name), path, run.document, run.samples, run.result)


def load_runs(directories: list[str | Path]) -> list[RunData]:
    """Read several run directories; page ids are the folder names, made unique with a numeric suffix."""
    runs: list[RunData] = []
    seen: dict[str, int] = {}
    for directory in directories:
        base = _slug(Path(directory).resolve().name)
        seen[base] = seen.get(base, 0) + 1
        runs.append(load_run(directory, base if seen[base] == 1 else f"{base}-{seen[base]}"))
    return runs
