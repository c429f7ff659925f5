"""A run directory read back: `load_run` gives the typed results (`mepbench.records.RunResult`), the samples frame,
typed `SampleRecord`s and one row per estimate."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from mepbench.records import RunResult, SampleRecord


@dataclass
class Run:
    """A run directory loaded: the typed results, the samples frame (one row per model call, nested columns as Python
    lists and dicts), the results document as read, and where it came from."""

    path: Path
    result: RunResult
    samples: Any
    document: dict[str, Any]

    def records(self) -> Iterator[SampleRecord]:
        """The samples as typed records, in file order."""
        for row in self.samples.to_dict("records"):
            yield SampleRecord.from_row(row)

    def evals(self) -> Any:
        """A DataFrame with one row per estimate: task, metric pointer, value, interval, n, method and caveat."""
        import pandas as pd

        rows = [{"task": name, "metric": pointer, "value": m.value, "ci_low": m.ci_low, "ci_high": m.ci_high,
                 "n": m.n, "method": m.method, "warning": m.warning,
                 "primary": pointer == f"/variants/full/metrics/{task.primary_metric}"}
                for name, task in self.result.tasks.items() for pointer, m in task.metrics().items()]
        return pd.DataFrame(rows, columns=["task", "metric", "value", "ci_low", "ci_high", "n", "method", "warning",
                                           "primary"])


def load_run(directory: str | Path) -> Run:
    """Read a run directory (results.json + samples.parquet) as typed results and a samples frame; errors name
    the file (pyarrow is imported here, not with the package)."""
    from mepbench.sample_table import read_samples

    path = Path(directory)
    source = path / "results.json"
    try:
        doc = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{source}: cannot read the results document ({exc})") from exc
    return Run(path, RunResult.from_document(doc, str(source)), read_samples(path / "samples.parquet"), doc)
