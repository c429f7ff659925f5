"""Batched vs one-at-a-time generation on tiny-omni, keeping decoded media vs decoding every request, and harness
overhead per request.

Runs the real pipeline (mep-synth clips decoded by PyAV, tiny-omni through the hf backend, the task's variants and
probes) in one process, so the ratios compare like with like:
  python benchmarks/bench_generation.py --samples 48 --batch-size 8
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from mepbench.media import DECODED
from mepbench.runner import EvalConfig, run_eval


def timed_run(config: EvalConfig) -> dict[str, float]:
    """Run once; return wall time, time inside backend.generate and per-request figures."""
    t0 = time.perf_counter()
    out = run_eval(config)
    wall = time.perf_counter() - t0
    n = out.stats["requests"]
    gen = out.stats["generation_seconds"]
    return {"requests": n, "wall_s": wall, "generate_s": gen, "overhead_per_request_ms": 1000 * (wall - gen) / n,
            "generate_per_request_ms": 1000 * gen / max(out.stats["generated"], 1)}


def main() -> None:
    """Print a JSON report with the batched/sequential speed-up and harness overhead."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    cache = Path(tempfile.mkdtemp(prefix="mepbench-bench-"))
    base = dict(tasks=["mep-synth"], limit=args.samples, cache_dir=cache, bootstrap=200)
    run_eval(EvalConfig(**{**base, "limit": 2}, use_cache=False))  # builds tiny-omni and the suite, warms up
    sequential = timed_run(EvalConfig(**{**base, "batch_size": 1}, use_cache=False))
    budget = DECODED.max_bytes
    DECODED.resize(0)  # the naive path: every request decodes its clip again
    decoding = timed_run(EvalConfig(**{**base, "batch_size": args.batch_size}, use_cache=False))
    DECODED.resize(budget)
    batched = timed_run(EvalConfig(**{**base, "batch_size": args.batch_size}, use_cache=False))
    run_eval(EvalConfig(**{**base, "batch_size": args.batch_size}))  # fill the cache
    cached = timed_run(EvalConfig(**{**base, "batch_size": args.batch_size}))
    report = {"sequential": sequential, "batched_decoding_every_request": decoding, "batched": batched,
              "cached_rerun": cached,
              "batched_speedup_generate": sequential["generate_s"] / batched["generate_s"],
              "batched_speedup_wall": sequential["wall_s"] / batched["wall_s"],
              "decoded_media_speedup_generate": decoding["generate_s"] / batched["generate_s"]}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
