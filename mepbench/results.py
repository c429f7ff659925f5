"""Run directory writer and reader: `results.json` (metrics + reproducibility metadata) and
`samples.parquet` (one row per sample × variant)."""

from __future__ import annotations

import json
import numbers
import platform
import subprocess
import sys
import time
import uuid
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from mepbench import strict_json
from mepbench.media import file_hash
from mepbench.posters import POSTER_DIR, make_posters
from mepbench.records import SCHEMA_VERSION, results_schema
from mepbench.runner import EvalConfig, RunOutput
from mepbench.sample_table import write_samples
from mepbench.types import Request, Response, Sample, TextPart

PACKAGES = ("mepbench", "torch", "transformers", "numpy", "av", "soundfile", "datasets", "pandas", "pyarrow",
            "vllm", "sentence-transformers")


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that can change results."""
    out = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def git_state(path: Path) -> dict[str, Any]:
    """Commit and dirty flag of the checkout holding `path`, if it is one."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain"))}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def _config_dict(config: EvalConfig) -> dict[str, Any]:
    data = asdict(config)
    data["mask_mode"] = config.mask_mode.value if config.mask_mode else None
    return json.loads(json.dumps(data, default=str))


def build_results(output: RunOutput, config: EvalConfig, run_id: str = "") -> dict[str, Any]:
    """The results.json document (`mepbench.records.RunResult` reads it)."""
    first = next((i.request for i in output.items if i.request is not None), None)
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": _config_dict(config),
        "metadata": {
            "command": sys.argv,
            "git": git_state(Path(__file__).parent),
            "packages": package_versions(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "backend": output.backend.name,
            "model": output.backend.describe(),
            "model_fingerprint": output.backend.fingerprint(),
            "generation": {name: asdict(t.params) for name, t in output.task_objects.items()},
            "task_fingerprints": {name: t.fingerprint() for name, t in output.task_objects.items()},
            "mask_mode": {name: agg["mask_mode"] for name, agg in output.tasks.items()},
            "seed": config.seed,
            "bootstrap_resamples": config.bootstrap,
            "example_request": _request_json(first) if first else None,
        },
        "tasks": output.tasks,
        "groups": output.groups,
        "stats": output.stats,
    }


def _request_json(request: Request) -> list[dict[str, Any]]:
    return [{"role": m.role, "content": [{"type": "text", "text": p.text} if isinstance(p, TextPart)
                                         else {"type": p.type, "path": p.path, "blank": p.blank}
                                         for p in m.content]} for m in request.messages]


def _media_hashes(request: Request) -> dict[str, str]:
    """Content hash of each media file the request used, by part type (memoised in `file_hash`)."""
    return {p.type: file_hash(p.path) for p in request.media_parts()}


def _sample_media(sample: Sample | None) -> dict[str, str]:
    """The sample's video and audio files that exist now (the report links these; a replayed run may have none)."""
    if sample is None:
        return {}
    return {kind: path for kind in ("video", "audio") if (path := getattr(sample, kind)) and Path(path).is_file()}


ROW_FIELDS = frozenset({"task", "sample_id", "variant", "item", "kind", "mask_mode", "request_key", "label", "target",
                        "error", "error_reason", "cached", "sample", "request", "response"})  # the runner's row; the rest are scores


def _label_columns(label: Any) -> dict[str, Any]:
    """A label as its columns: a string in `label`, a number in `label_value`, anything else as JSON text in
    `label`."""
    if label is None or isinstance(label, str):
        return {"label": label, "label_value": None}
    if isinstance(label, numbers.Real) and not isinstance(label, bool):
        return {"label": None, "label_value": float(label)}
    return {"label": json.dumps(label, ensure_ascii=False, default=str), "label_value": None}


def sample_rows(output: RunOutput, config: EvalConfig, run_id: str, posters: dict[str, str]) -> list[dict[str, Any]]:
    """One samples.parquet row per model call (see `mepbench.records.SampleRecord`); `posters` maps video paths to
    their poster frame in the run directory."""
    records = []
    media_of: dict[int, dict[str, str]] = {}
    for row in output.rows:
        request: Request | None = row["request"]
        response: Response | None = row["response"]
        sample: Sample | None = row["sample"]
        scores = {k: v for k, v in row.items() if k not in ROW_FIELDS}
        media = media_of.setdefault(id(sample), _sample_media(sample))
        pred = scores.pop("pred", None)
        records.append({
            **{k: row[k] for k in ("task", "sample_id", "variant", "item", "kind", "mask_mode", "request_key",
                                   "error", "cached", "target")},
            "model": config.model, "run_id": run_id, "error_reason": row.get("error_reason"),
            **_label_columns(row["label"]),
            "pred": pred if pred is None or isinstance(pred, str) else json.dumps(pred, default=str),
            "correct": None if (correct := scores.pop("correct", None)) is None else bool(correct),
            "cue_matches": scores.pop("cue_matches", None) or [],
            "prompt": _request_json(request) if request else None,
            "zero_features": sorted(m.value for m in request.zero_features) if request else [],
            "media_sha256": _media_hashes(request) if request and row["request_key"] else None,
            "media": media or None, "poster": posters.get(media.get("video", "")),
            "subtitle": sample.subtitle if sample and not row["item"] else None,
            "response": response.text if response else None,
            "prompt_tokens": response.prompt_tokens if response else None,
            "completion_tokens": response.completion_tokens if response else None,
            "latency_s": response.latency_s if response else None,
            "scores": scores,
        })
    return records


def default_output_dir(config: EvalConfig) -> Path:
    """`runs/<model name>-<UTC timestamp>` under the working directory."""
    stem = Path(config.model.rstrip("/")).name or "model"
    return Path("runs") / f"{stem}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"


def write_run(output: RunOutput, config: EvalConfig, directory: Path) -> dict[str, Any]:
    """Write the run directory: results.json (strict JSON: see `mepbench.strict_json`) with its JSON Schema beside it,
    samples.parquet (native columns: `mepbench.sample_table`) and the poster frame of every clip in `posters/`, so the
    report needs nothing but this folder. Returns the results document as computed (undefined metrics NaN)."""
    directory.mkdir(parents=True, exist_ok=True)
    run_id = uuid.uuid4().hex[:16]
    results = build_results(output, config, run_id)
    videos = list(dict.fromkeys(r["sample"].video for r in output.rows if r["sample"] is not None and r["sample"].video))
    posters = make_posters(videos, directory / POSTER_DIR) if config.posters else {}
    write_samples(sample_rows(output, config, run_id, {v: f"{POSTER_DIR}/{n}" for v, n in posters.items()}),
                  directory / "samples.parquet")
    (directory / "results.schema.json").write_text(json.dumps(results_schema(), indent=1), encoding="utf-8")
    tmp = directory / "results.json.tmp"
    tmp.write_text(strict_json.dumps(results, indent=2), encoding="utf-8")
    tmp.replace(directory / "results.json")
    return results
