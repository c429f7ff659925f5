"""Run directory writer and reader: `results.json` (metrics + reproducibility metadata) and
`samples.parquet` (one row per sample × variant)."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from mepbench import strict_json
from mepbench.media import file_hash
from mepbench.runner import EvalConfig, RunOutput
from mepbench.types import Request, Response, TextPart

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


def build_results(output: RunOutput, config: EvalConfig) -> dict[str, Any]:
    """The results.json document."""
    first = next((i.request for i in output.items if i.request is not None), None)
    return {
        "mepbench_results_version": 2,  # 2: strict JSON, undefined metrics null and listed under `non_finite`
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


def sample_frame(output: RunOutput) -> "Any":
    """A pandas DataFrame with one row per sample × variant."""
    import pandas as pd

    records = []
    for row in output.rows:
        request: Request | None = row["request"]
        response: Response | None = row["response"]
        extra = {k: v for k, v in row.items() if k not in ("request", "response", "sample")}
        records.append({
            **{k: extra.pop(k) for k in ("task", "sample_id", "variant", "item", "kind", "mask_mode", "request_key",
                                          "error", "cached")},
            "target": json.dumps(target) if (target := extra.pop("target")) else None,
            "label": json.dumps(extra.pop("label")),
            "pred": extra.pop("pred", None),
            "correct": extra.pop("correct", None),
            "prompt": json.dumps(_request_json(request)) if request else None,
            "zero_features": ",".join(sorted(m.value for m in request.zero_features)) if request else None,
            "media_sha256": json.dumps(_media_hashes(request)) if request and row["request_key"] else None,
            "response": response.text if response else None,
            "prompt_tokens": response.prompt_tokens if response else None,
            "completion_tokens": response.completion_tokens if response else None,
            "latency_s": response.latency_s if response else None,
            "scores": json.dumps(extra, default=str),
        })
    return pd.DataFrame.from_records(records)


def default_output_dir(config: EvalConfig) -> Path:
    """`runs/<model name>-<UTC timestamp>` under the working directory."""
    stem = Path(config.model.rstrip("/")).name or "model"
    return Path("runs") / f"{stem}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"


def write_run(output: RunOutput, config: EvalConfig, directory: Path) -> dict[str, Any]:
    """Write results.json (strict JSON: see `mepbench.strict_json`) and samples.parquet into `directory`; returns the
    results document as computed (undefined metrics NaN)."""
    directory.mkdir(parents=True, exist_ok=True)
    results = build_results(output, config)
    tmp = directory / "results.json.tmp"
    tmp.write_text(strict_json.dumps(results, indent=2), encoding="utf-8")
    tmp.replace(directory / "results.json")
    sample_frame(output).to_parquet(directory / "samples.parquet", index=False)
    return results


def read_run(directory: str | Path) -> tuple[dict[str, Any], "Any"]:
    """Load a run directory's results document and samples frame."""
    import pandas as pd

    directory = Path(directory)
    results = json.loads((directory / "results.json").read_text(encoding="utf-8"))
    return results, pd.read_parquet(directory / "samples.parquet")
