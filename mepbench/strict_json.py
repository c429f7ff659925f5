"""Strict JSON for the documents a run writes: a metric that is undefined (NaN) or diverged (±Infinity) is written as
`null`, and the document's `non_finite` map says which values those were and what they held, so every JSON reader
loads the file (bare `NaN` is not JSON) and nothing is silently lost."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

NON_FINITE = "non_finite"  # the key of the JSON-pointer → "NaN" / "Infinity" / "-Infinity" map


def _pointer(path: tuple[str, ...]) -> str:
    """RFC 6901 JSON pointer of a path of keys and list indices."""
    return "".join("/" + part.replace("~", "~0").replace("/", "~1") for part in path)


def _token(value: float) -> str:
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def finite(value: Any, path: tuple[str, ...] = ()) -> tuple[Any, dict[str, str]]:
    """`value` with numpy scalars made Python numbers, tuples made lists and every non-finite float replaced by
    None; with the JSON pointer and the original token of each replaced value."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None, {_pointer(path): _token(value)}
    if isinstance(value, dict):
        out, bad = {}, {}
        for key, item in value.items():
            out[key], more = finite(item, (*path, str(key)))
            bad.update(more)
        return out, bad
    if isinstance(value, (list, tuple)):
        items, bad = [], {}
        for i, item in enumerate(value):
            clean, more = finite(item, (*path, str(i)))
            items.append(clean)
            bad.update(more)
        return items, bad
    return value, {}


def dumps(document: dict[str, Any], **options: Any) -> str:
    """`document` as strict JSON (objects it cannot encode as their `str`), with its `non_finite` map when any value
    was replaced."""
    clean, bad = finite(document)
    if bad:
        clean[NON_FINITE] = bad
    return json.dumps(clean, allow_nan=False, default=str, **options)
