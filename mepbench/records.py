"""The typed records of a run directory: one `SampleRecord` per model call, `MetricValue` for every estimate,
`TaskResult` and `RunResult` for results.json (`mepbench.run_dir.load_run` reads a run back as these).

Schema 3 (`SCHEMA_VERSION`) is the version written since samples.parquet got native columns; results.json is
strict JSON (undefined values are `null`, listed under `non_finite`) and validates against `results_schema()`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from importlib.resources import files
from typing import Any, Iterator, Literal

SCHEMA_VERSION = 3
Kind = Literal["main", "probe", "control", "negative", "judge"]
KINDS: tuple[str, ...] = ("main", "probe", "control", "negative", "judge")
ESTIMATE_KEYS = frozenset({"value", "ci_low", "ci_high"})


@dataclass(frozen=True)
class MetricValue:
    """One estimate: the value, its interval (None when undefined or not computed), the n it rests on and the
    interval method (`wilson`, `bca-bootstrap`, `percentile-bootstrap`, `paired-percentile-bootstrap`, ...) and its
    caveat (e.g. too few units for a bootstrap)."""

    value: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    n: int | None = None
    method: str | None = None
    warning: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MetricValue:
        """The estimate of a results.json `{value, ci_low, ci_high[, n, method]}` object."""
        def number(key: str) -> float | None:
            value = data.get(key)
            return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
        n = data.get("n")
        def text(key: str) -> str | None:
            return data[key] if isinstance(data.get(key), str) else None
        return cls(number("value"), number("ci_low"), number("ci_high"), n if isinstance(n, int) else None,
                   text("method"), text("warning"))


def _pointer_part(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def estimates(tree: Any, prefix: str = "") -> Iterator[tuple[str, MetricValue]]:
    """Every estimate in a results tree as (JSON pointer, MetricValue), in document order."""
    if isinstance(tree, dict):
        if ESTIMATE_KEYS <= tree.keys():
            yield prefix, MetricValue.from_dict(tree)
            return
        for key, value in tree.items():
            yield from estimates(value, f"{prefix}/{_pointer_part(str(key))}")


@dataclass(frozen=True)
class TaskResult:
    """One task's results: identity, sizes and the full tree the task's metrics wrote (`tree`), with every estimate
    addressable by its JSON pointer (`/variants/full/metrics/accuracy`)."""

    name: str
    primary_metric: str
    fingerprint: str
    mask_mode: str
    n_samples: int
    n_failed: int
    scale: float
    tree: dict[str, Any]

    @classmethod
    def from_dict(cls, name: str, data: dict[str, Any]) -> TaskResult:
        """The typed view of `results["tasks"][name]`."""
        return cls(name, str(data.get("primary_metric", "")), str(data.get("fingerprint", "")),
                   str(data.get("mask_mode", "")), int(data.get("n_samples") or 0), int(data.get("n_failed") or 0),
                   float(data.get("scale") or 1), data)

    def metrics(self) -> dict[str, MetricValue]:
        """Every estimate of the task by JSON pointer."""
        return dict(estimates(self.tree))

    def metric(self, pointer: str) -> MetricValue | None:
        """The estimate at `pointer` (e.g. `/reliance/mask:video/flip_rate`), None when absent."""
        node: Any = self.tree
        for part in pointer.strip("/").split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return MetricValue.from_dict(node) if isinstance(node, dict) and ESTIMATE_KEYS <= node.keys() else None

    def primary(self, variant: str = "full") -> MetricValue | None:
        """The primary metric under `variant`."""
        return self.metric(f"/variants/{_pointer_part(variant)}/metrics/{_pointer_part(self.primary_metric)}")


@dataclass(frozen=True)
class RunResult:
    """results.json as types: the run's id, config and metadata, per-task results, groups and run statistics."""

    schema_version: int
    run_id: str
    created: str
    config: dict[str, Any]
    metadata: dict[str, Any]
    tasks: dict[str, TaskResult]
    groups: dict[str, dict[str, Any]]
    stats: dict[str, Any]
    non_finite: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_document(cls, doc: dict[str, Any], source: str = "results.json") -> RunResult:
        """Parse a results.json document; a document of another schema version is a ValueError naming `source`."""
        version = doc.get("schema_version") if isinstance(doc, dict) else None
        if version != SCHEMA_VERSION:
            old = doc.get("mepbench_results_version") if isinstance(doc, dict) else None
            raise ValueError(f"{source}: schema_version {version if old is None else old!r}, this mepbench reads "
                             f"{SCHEMA_VERSION}; re-run `mepbench eval` with the same arguments (answers come from "
                             "the cache) to rewrite the run directory")
        tasks = doc.get("tasks") or {}
        if not isinstance(tasks, dict) or not all(isinstance(v, dict) for v in tasks.values()):
            raise ValueError(f"{source}: field 'tasks' must map task names to objects")
        return cls(version, str(doc.get("run_id", "")), str(doc.get("created", "")), dict(doc.get("config") or {}),
                   dict(doc.get("metadata") or {}), {k: TaskResult.from_dict(k, v) for k, v in tasks.items()},
                   dict(doc.get("groups") or {}), dict(doc.get("stats") or {}), dict(doc.get("non_finite") or {}))


@dataclass(frozen=True)
class CueMatchRecord:
    """One cue of a scored reasoning: on the `reference` or `predicted` side, its modality, its best counterpart and
    similarity (None when the other side is empty) and whether it counts as matched at the run's τ."""

    side: Literal["reference", "predicted"]
    modality: str
    cue: str
    best: str | None
    similarity: float | None
    matched: bool


@dataclass(frozen=True)
class SampleRecord:
    """One row of samples.parquet: one model call (a sample under a variant, or one of its probe items) with what
    was asked, what came back, how it scored and, on failure, why; enough to rebuild every report page."""

    task: str
    sample_id: str
    variant: str
    item: str = ""
    kind: Kind = "main"
    model: str = ""
    run_id: str = ""
    mask_mode: str | None = None
    request_key: str | None = None
    label: Any = None
    target: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    error_reason: str | None = None  # the failure class (`mepbench.runner.ERROR_REASONS`)
    cached: bool = False
    pred: str | None = None
    correct: bool | None = None
    prompt: list[dict[str, Any]] | None = None
    zero_features: list[str] = field(default_factory=list)
    media_sha256: dict[str, str | None] = field(default_factory=dict)
    media: dict[str, str | None] = field(default_factory=dict)
    poster: str | None = None
    subtitle: str | None = None
    response: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_s: float | None = None
    cue_matches: list[CueMatchRecord] = field(default_factory=list)
    scores: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> SampleRecord:
        """The record of one samples.parquet row as read by `read_samples` (label from `label` or `label_value`)."""
        names = {f.name for f in fields(cls)}
        row = {k: none_if_missing(v) for k, v in row.items()}
        data = {k: v for k, v in row.items() if k in names and v is not None}
        if row.get("label_value") is not None and row.get("label") is None:
            data["label"] = row["label_value"]
        data["cue_matches"] = [CueMatchRecord(**m) for m in row.get("cue_matches") or []]
        for key in ("target", "scores", "media_sha256", "media"):
            data[key] = dict(row.get(key) or {})
        data["zero_features"] = list(row.get("zero_features") or [])
        return cls(**data)


def results_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of results.json at `SCHEMA_VERSION`."""
    text = files("mepbench").joinpath("schema", f"results-v{SCHEMA_VERSION}.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


def none_if_missing(value: Any) -> Any:
    """None for a missing value as pandas gives it (NaN, NA), else `value`."""
    return None if (isinstance(value, float) and value != value) or type(value).__name__ == "NAType" else value
