"""vLLM vs hf backend throughput on the same tiny Qwen2 text model and the same greedy request set.

The hf side runs in this interpreter; the vLLM side runs the vllm backend in the vLLM venv
(`mepbench.backends.vllm_worker`, create the venv with scripts/setup-vllm-venv.sh). Both get one
warm-up call, then `--repeats` timed `generate` calls, each on fresh prompts (so vLLM's prefix cache
only reuses the shared system prompt, as in a real run); the median call is reported and engine
start-up apart:
  .venv/bin/python benchmarks/bench_vllm_vs_hf.py --requests 256 --max-new-tokens 64 --hf-batch-size 32
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mepbench.backends.hf import HFBackend
from mepbench.backends.vllm_worker import request_to_json
from mepbench.models.tiny_omni import ACOUSTIC_CUES, LABELS, SCENE_WORDS, VISUAL_CUES
from mepbench.models.tiny_text import ensure_tiny_text
from mepbench.types import GenerationParams, Message, Request, TextPart

ROOT = Path(__file__).resolve().parents[1]


def request_set(n: int, max_new_tokens: int, start: int = 0) -> list[Request]:
    """`n` distinct greedy chat requests of varied length (a fixed system prompt, as in real runs)."""
    params = GenerationParams(max_new_tokens=max_new_tokens)
    cues = itertools.islice(itertools.cycle(itertools.product(VISUAL_CUES, ACOUSTIC_CUES, LABELS)), start, None)
    requests = []
    for i in range(start, start + n):
        v, a, label = next(cues)
        scene = " ".join(SCENE_WORDS[(i * 7 + k) % len(SCENE_WORDS)] for k in range(5 + i % 40))
        text = f"Clip {i}: {scene}. The face shows {v}; the voice has {a}. Is the person {label}? Explain."
        requests.append(Request(messages=(Message("system", (TextPart("You judge emotions."),)),
                                          Message("user", (TextPart(text),))), params=params))
    return requests


def run_hf(model: Path, sets: list[list[Request]], batch_size: int) -> dict:
    """Throughput of the hf backend on each request set (one warm-up call first)."""
    start = time.perf_counter()
    backend = HFBackend(str(model), batch_size=batch_size)
    init_s = time.perf_counter() - start
    backend.generate(sets[0][:batch_size])
    calls = []
    for requests in sets:
        start = time.perf_counter()
        responses = backend.generate(requests)
        calls.append((time.perf_counter() - start, [r.to_dict() for r in responses]))
    return summarise(calls, init_s)


def run_vllm(model: Path, sets: list[list[Request]], venv: Path, work: Path) -> dict:
    """Throughput of the vllm backend on each request set, run in the vLLM venv after a warm-up batch."""
    lines = [{"batch": 0, "request": request_to_json(r)} for r in sets[0][:8]]
    lines += [{"batch": k, "request": request_to_json(r)} for k, requests in enumerate(sets, 1) for r in requests]
    (work / "requests.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1"}
    command = [str(venv / "bin" / "python"), "-m", "mepbench.backends.vllm_worker", str(model),
               "--requests", str(work / "requests.jsonl"), "--out", str(work / "report.json"),
               "--model-arg", "dtype=float32", "--model-arg", "max_model_len=1024", "--model-arg", "enforce_eager=true"]
    done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        sys.exit(f"vLLM worker failed:\n{done.stderr[-4000:]}")
    report = json.loads((work / "report.json").read_text())
    return summarise([(b["wall_s"], b["responses"]) for b in report["batches"][1:]], report["init_s"])


def summarise(calls: list[tuple[float, list[dict]]], init_s: float) -> dict:
    """Requests/s and completion tokens/s of the median timed call (all calls' figures listed too)."""
    rates = sorted(((len(responses) / wall, sum(r["completion_tokens"] for r in responses) / wall, wall, responses)
                    for wall, responses in calls), key=lambda rate: rate[0])
    req_s, tok_s, wall, responses = rates[len(rates) // 2]
    return {"requests": len(responses), "errors": sum(r["error"] is not None for r in responses),
            "wall_s": round(wall, 3), "requests_per_s": round(req_s, 2), "tokens_per_s": round(tok_s, 1),
            "completion_tokens": sum(r["completion_tokens"] for r in responses),
            "all_requests_per_s": [round(r[0], 2) for r in rates], "engine_start_s": round(init_s, 1),
            "texts": [r["text"] for r in calls[0][1]]}


def main() -> None:
    """Print (and optionally write) the hf and vLLM figures and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=256)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--hf-batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--hf-threads", type=int, help="torch threads for the hf side (vLLM's CPU engine uses 1)")
    parser.add_argument("--vllm-venv", type=Path, default=ROOT / ".venv-vllm")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if not (args.vllm_venv / "bin" / "python").exists():
        sys.exit(f"no vLLM venv at {args.vllm_venv}: run scripts/setup-vllm-venv.sh")
    if args.hf_threads:
        import torch

        torch.set_num_threads(args.hf_threads)
    work = Path(tempfile.mkdtemp(prefix="mepbench-bench-vllm-"))
    model = ensure_tiny_text(work / "cache")
    sets = [request_set(args.requests, args.max_new_tokens, k * args.requests) for k in range(args.repeats)]
    hf = run_hf(model, sets, args.hf_batch_size)
    vllm = run_vllm(model, sets, args.vllm_venv, work)
    same = sum(a.rstrip("\ufffd") == b.rstrip("\ufffd") for a, b in zip(hf.pop("texts"), vllm.pop("texts")))
    report = {"model": "tiny-text (Qwen2, 0.5M params, float32, CPU)", "requests": args.requests,
              "max_new_tokens": args.max_new_tokens, "hf_batch_size": args.hf_batch_size,
              "hf_threads": args.hf_threads or "torch default", "hf": hf, "vllm": vllm,
              "ratio_requests_per_s": round(vllm["requests_per_s"] / hf["requests_per_s"], 2),
              "ratio_tokens_per_s": round(vllm["tokens_per_s"] / hf["tokens_per_s"], 2),
              "identical_greedy_texts": f"{same}/{args.requests}", "repeats": args.repeats,
              "cpu_count": os.cpu_count(), "load_average": os.getloadavg()}
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
