"""Run the vllm backend on a JSONL file of requests, in whatever interpreter has vLLM installed.

On CPU machines vLLM lives in its own venv (`scripts/setup-vllm-venv.sh`: it pins an older
transformers than the project's), so tests and benchmarks reach it through this entry point:

    .venv-vllm/bin/python -m mepbench.backends.vllm_worker MODEL --requests in.jsonl --out out.json \
        [--model-arg key=value ...]

Input lines are `{"batch": K, "request": {...}}`; each batch is one `generate` call, in order of first
appearance. The output JSON holds the backend's description, fingerprint, capabilities, engine start
time and, per batch, its wall time and responses.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from mepbench.types import (AudioPart, ContentPart, GenerationParams, ImagePart, Message, Modality, Request,
                            TextPart, VideoPart)

MEDIA_TYPES: dict[str, type] = {"video": VideoPart, "audio": AudioPart, "image": ImagePart}


def request_to_json(request: Request) -> dict[str, Any]:
    """A request as plain JSON (media by path)."""
    return {"messages": [{"role": m.role, "content": [asdict(p) for p in m.content]} for m in request.messages],
            "params": asdict(request.params), "zero_features": sorted(m.value for m in request.zero_features),
            "sample_id": request.sample_id, "variant": request.variant}


def _part(data: dict[str, Any]) -> ContentPart:
    if data["type"] == "text":
        return TextPart(data["text"])
    return MEDIA_TYPES[data["type"]](data["path"], blank=bool(data.get("blank", False)))


def request_from_json(data: dict[str, Any]) -> Request:
    """The inverse of `request_to_json`."""
    messages = tuple(Message(m["role"], tuple(_part(p) for p in m["content"])) for m in data["messages"])
    return Request(messages=messages, params=GenerationParams(**data.get("params", {})),
                   zero_features=frozenset(Modality(m) for m in data.get("zero_features", ())),
                   sample_id=data.get("sample_id", ""), variant=data.get("variant", ""))


def _options(pairs: list[str]) -> dict[str, Any]:
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--model-arg expects key=value, got {pair!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def run(model: str, requests_path: Path, out_path: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Build the backend, answer each batch in order, write and return the report."""
    from mepbench.backends.vllm import VLLMBackend

    batches: dict[Any, list[Request]] = {}
    for line in requests_path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            batches.setdefault(row.get("batch", 0), []).append(request_from_json(row["request"]))
    start = time.perf_counter()
    backend = VLLMBackend(model, **options)
    report: dict[str, Any] = {"init_s": time.perf_counter() - start, "fingerprint": backend.fingerprint(),
                              "describe": backend.describe(), "batches": [],
                              "capabilities": {"modalities": sorted(m.value for m in backend.capabilities.modalities),
                                               "feature_masking": backend.capabilities.feature_masking}}
    try:
        for key, requests in batches.items():
            start = time.perf_counter()
            responses = backend.generate(requests)
            report["batches"].append({"batch": key, "wall_s": time.perf_counter() - start,
                                      "responses": [r.to_dict() for r in responses]})
    finally:
        backend.close()
    out_path.write_text(json.dumps(report, indent=1, default=str))
    return report


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m mepbench.backends.vllm_worker", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--requests", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--model-arg", action="append", default=[])
    args = parser.parse_args(argv)
    run(args.model, args.requests, args.out, _options(args.model_arg))


if __name__ == "__main__":
    main()
