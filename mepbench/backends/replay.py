"""Replay backend: answers come from a file of recorded outputs keyed by sample id (and variant).

Lets published outputs (e.g. AffectGPT's released answers) or an earlier run's `samples.parquet` be
scored without a model. Formats: JSONL, JSON, CSV, Parquet and NPZ. NPZ files of pickled objects
(AffectGPT's `name2reason`) load only with `allow_pickle=True`, an explicit opt-in: unpickling can
run code, so never enable it for files you do not trust.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mepbench.backends.base import Capabilities
from mepbench.media import file_hash
from mepbench.types import Request, Response

TEXT_COLUMNS = ("response", "text", "output", "answer", "prediction")


def _rows_to_map(rows: list[dict[str, Any]], source: Path) -> dict[tuple[str, str], str]:
    if not rows:
        return {}
    column = next((c for c in TEXT_COLUMNS if c in rows[0]), None)
    id_column = "sample_id" if "sample_id" in rows[0] else "id"
    if column is None or id_column not in rows[0]:
        raise ValueError(f"{source}: need an id/sample_id column and one of {TEXT_COLUMNS}; found {sorted(rows[0])}")
    return {(str(r[id_column]), str(r.get("variant") or "")): "" if r[column] is None else str(r[column])
            for r in rows}


def load_outputs(path: str | Path, allow_pickle: bool = False) -> dict[tuple[str, str], str]:
    """Map (sample id, variant or "") to recorded text, from any supported format."""
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"replay file not found: {source}")
    suffix = source.suffix.lower()
    if suffix == ".jsonl":
        lines = source.read_text(encoding="utf-8").splitlines()
        return _rows_to_map([json.loads(x) for x in lines if x.strip()], source)
    if suffix == ".json":
        data = json.loads(source.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            return {(str(k), ""): str(v) for k, v in data.items()}
        return _rows_to_map(data, source)
    if suffix in (".csv", ".parquet"):
        import pandas as pd

        frame = pd.read_csv(source) if suffix == ".csv" else pd.read_parquet(source)
        if "error" in frame.columns:
            frame = frame[frame["error"].isna()]
        return _rows_to_map(frame.to_dict("records"), source)
    if suffix == ".npz":
        return _load_npz(source, allow_pickle)
    raise ValueError(f"{source}: unsupported replay format {suffix!r} (jsonl, json, csv, parquet, npz)")


def _load_npz(source: Path, allow_pickle: bool) -> dict[tuple[str, str], str]:
    import numpy as np

    try:
        with np.load(source, allow_pickle=allow_pickle) as data:
            if "name2reason" in data.files:
                mapping = data["name2reason"].item()
                return {(str(k), ""): str(v) for k, v in mapping.items()}
            if {"filenames", "fileitems"} <= set(data.files):
                return {(str(k), ""): str(v) for k, v in zip(data["filenames"], data["fileitems"])}
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise ValueError(f"{source} holds pickled objects; opt in with --model-arg allow_pickle=true (for an "
                             "AffectGPT results folder: --allow-pickle or MEPBENCH_ALLOW_PICKLE=1) only if you trust "
                             "the file") from exc
        raise
    raise ValueError(f"{source}: expected arrays 'name2reason' or 'filenames'+'fileitems'")


class ReplayBackend:
    """Answers each request with the recorded output for its (sample id, variant).

    Entries without a variant are full-input outputs: they answer only the `full` variant, never a
    masked one, so a masked score is never a copy of the full score.
    """

    name = "replay"
    capabilities = Capabilities(batching=True, feature_masking=True, keyed_by_sample=True, cacheable=False)

    def __init__(self, model: str, *, allow_pickle: bool = False, **_: Any):
        self.path = Path(model)
        self.outputs = load_outputs(self.path, allow_pickle=allow_pickle)
        self._by_id = {sid: text for (sid, variant), text in self.outputs.items() if not variant}

    def fingerprint(self) -> str:
        """The recorded file's content hash."""
        return f"replay:{file_hash(self.path)}"

    def describe(self) -> dict[str, object]:
        """Source file, hash and entry count."""
        return {"backend": self.name, "path": str(self.path.resolve()), "sha256": file_hash(self.path),
                "entries": len(self.outputs)}

    def generate(self, requests: list[Request]) -> list[Response]:
        """Look each request up; a missing entry is an error response naming the file."""
        out = []
        for r in requests:
            text = self.outputs.get((r.sample_id, r.variant))
            if text is None and r.variant in ("", "full"):
                text = self._by_id.get(r.sample_id)
            out.append(Response(text=text) if text is not None else
                       Response(error=f"no recorded output for sample {r.sample_id!r} variant {r.variant!r} "
                                      f"in {self.path}"))
        return out
