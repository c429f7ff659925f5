"""samples.parquet with native columns: nested prompts, targets, media hashes, cue matches and scores are Arrow
lists and structs, not JSON strings. A task's own score fields become one struct column whose child types are
inferred per field; a field whose values share no Arrow type is stored as JSON text and named in the file's
metadata (`mepbench.json_fields`), so reading gives back what was written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mepbench.records import SCHEMA_VERSION, none_if_missing

_STR = pa.string()
PART = pa.struct([("type", _STR), ("text", _STR), ("path", _STR), ("blank", pa.bool_())])
MESSAGE = pa.struct([("role", _STR), ("content", pa.list_(PART))])
MEDIA = pa.struct([("video", _STR), ("audio", _STR), ("image", _STR)])
CUE_MATCH = pa.struct([("side", _STR), ("modality", _STR), ("cue", _STR), ("best", _STR),
                       ("similarity", pa.float64()), ("matched", pa.bool_())])
FIXED: dict[str, pa.DataType] = {
    "task": _STR, "sample_id": _STR, "variant": _STR, "item": _STR, "kind": _STR, "model": _STR, "run_id": _STR,
    "mask_mode": _STR, "request_key": _STR, "label": _STR, "label_value": pa.float64(), "error": _STR,
    "error_reason": _STR, "cached": pa.bool_(), "pred": _STR, "correct": pa.bool_(), "prompt": pa.list_(MESSAGE),
    "zero_features": pa.list_(_STR), "media_sha256": MEDIA, "media": MEDIA, "poster": _STR, "subtitle": _STR,
    "response": _STR, "prompt_tokens": pa.int64(), "completion_tokens": pa.int64(), "latency_s": pa.float64(),
    "cue_matches": pa.list_(CUE_MATCH)}
FLEXIBLE = ("target", "scores")  # struct columns typed by their content
JSON_FIELDS_KEY = b"mepbench.json_fields"


def plain(value: Any) -> Any:
    """`value` with numpy scalars and arrays made Python numbers and lists, tuples made lists (recursively), and a
    missing value as pandas writes it (NA) made None."""
    if type(value).__name__ == "NAType":
        return None
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def _writable(dtype: pa.DataType) -> bool:
    """Whether Parquet can store `dtype`: no struct without fields and no bare null type, at any depth."""
    if pa.types.is_null(dtype):
        return False
    if pa.types.is_struct(dtype):
        return dtype.num_fields > 0 and all(_writable(dtype.field(i).type) for i in range(dtype.num_fields))
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        return _writable(dtype.value_type)
    return True


def _child(values: list[Any]) -> tuple[pa.Array, bool]:
    """One struct field's values as an Arrow array, or as JSON text (True) when they share no writable type."""
    try:
        array = pa.array(values)
        if _writable(array.type):
            return array, False
        if array.null_count == len(array):
            return pa.nulls(len(values), _STR), False
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        pass
    return pa.array([None if v is None else json.dumps(v, ensure_ascii=False, default=str) for v in values], _STR), True


def _flexible(name: str, dicts: list[dict[str, Any] | None]) -> tuple[pa.Array, list[str]]:
    """A struct column from per-row dicts (missing keys null), and the fields stored as JSON text."""
    keys = list(dict.fromkeys(k for d in dicts if d for k in d))
    if not keys:
        return pa.nulls(len(dicts), _STR), []
    children, as_json = [], []
    for key in keys:
        array, encoded = _child([plain(d.get(key)) if d else None for d in dicts])
        children.append(array)
        if encoded:
            as_json.append(f"{name}.{key}")
    mask = pa.array([d is None for d in dicts], pa.bool_())
    return pa.StructArray.from_arrays(children, names=keys, mask=mask), as_json


def sample_table(rows: list[dict[str, Any]]) -> pa.Table:
    """The Arrow table of samples.parquet from row dicts holding the `FIXED` columns plus `target` and `scores`."""
    columns: dict[str, pa.Array] = {}
    for name, dtype in FIXED.items():
        values = [plain(r.get(name)) for r in rows]
        if not pa.types.is_floating(dtype):  # a frame read back holds NaN for missing text, flags and counts
            values = [none_if_missing(v) for v in values]
        columns[name] = pa.array(values, dtype)
    encoded: list[str] = []
    for name in FLEXIBLE:
        columns[name], more = _flexible(name, [r.get(name) or None for r in rows])
        encoded += more
    metadata = {b"mepbench.schema_version": str(SCHEMA_VERSION).encode(), JSON_FIELDS_KEY: json.dumps(encoded).encode()}
    return pa.table(columns).replace_schema_metadata(metadata)


def write_samples(rows: list[dict[str, Any]], path: Path) -> None:
    """Write samples.parquet atomically."""
    tmp = path.with_suffix(".parquet.tmp")
    pq.write_table(sample_table(rows), tmp)
    tmp.replace(path)


def read_samples(path: Path) -> Any:
    """samples.parquet as a pandas DataFrame: flat columns as pandas dtypes, nested ones as Python lists and dicts
    (JSON-text fields decoded back); a file of another schema version is a ValueError naming it."""
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise ValueError(f"{path}: cannot read the samples table ({exc})") from exc
    meta = table.schema.metadata or {}
    version = meta.get(b"mepbench.schema_version", b"?").decode()
    if version != str(SCHEMA_VERSION):
        raise ValueError(f"{path}: samples table of schema {version}, this mepbench reads {SCHEMA_VERSION}; re-run "
                         "`mepbench eval` with the same arguments to rewrite it")
    encoded = json.loads(meta.get(JSON_FIELDS_KEY, b"[]"))
    nested = [f.name for f in table.schema if pa.types.is_nested(f.type)]
    frame = table.drop_columns(nested).to_pandas()
    for name in nested:
        frame[name] = table.column(name).to_pylist()
    for spec in encoded:
        column, key = spec.split(".", 1)
        if column in frame:
            frame[column] = [_decoded(d, key) for d in frame[column]]
    for name in (*FLEXIBLE, "media", "media_sha256"):
        if name in frame:
            frame[name] = [{k: v for k, v in d.items() if v is not None} if isinstance(d, dict) else {}
                           for d in frame[name]]
    return frame[table.column_names]


def _decoded(row: dict[str, Any] | None, key: str) -> dict[str, Any] | None:
    if isinstance(row, dict) and isinstance(row.get(key), str):
        row = {**row, key: json.loads(row[key])}
    return row
