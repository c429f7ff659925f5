"""MER-UniBench scoring speed: rescoring AffectGPT's released caches for the 7 datasets with public labels
(7 checkpoints each, best-of-7) as a whole process, start-up and imports included, like the anchor.

Each counted run is a fresh `python bench_mer_scoring.py --child` subprocess (median of 3 after 1 warm-up);
the child also reports its scoring phase alone (`score_released`: wheel files, labels, caches, metrics).
The official scorer's figures (23.77 s wall, ~11.7 s scoring, AffectGPT `evaluation-scoreonly.py` on a 2-core
AMD EPYC without GPU) come from shared/research/anchor-official-scorer.md; it is not run side by side here.
  python benchmarks/bench_mer_scoring.py [--fixtures ../shared/fixtures] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATASETS = ("mer2023", "meld", "iemocapfour", "cmumosi", "cmumosei", "sims", "simsv2")
TABLE2 = {"mer2023": 78.54, "meld": 55.65, "iemocapfour": 60.54, "cmumosi": 81.30, "cmumosei": 80.90,
          "sims": 88.49, "simsv2": 86.18}
ANCHOR_WALL_S, ANCHOR_SCORING_S = 23.77, 11.7
ANCHOR_SOURCE = ("shared/research/anchor-official-scorer.md: official AffectGPT evaluation-scoreonly.py, same "
                 "workload, median of 3 after a warm-up, 2-core AMD EPYC, no GPU; not re-run here")
DEFAULT_FIXTURES = Path(os.environ.get("MEPBENCH_SHARED", Path(__file__).resolve().parents[2] / "shared")) / "fixtures"


def child(fixtures: Path) -> None:
    """Score the released caches once and print scoring seconds and the primary values as JSON."""
    from mepbench.tasks.mer_data import score_released

    root = fixtures / "mer_unibench"
    t0 = time.perf_counter()
    results = score_released(root / "AffectGPT" / "output", root / "MERTools" / "MERBench" / "dataset",
                             fixtures / "emotion_wheel", DATASETS, allow_pickle=True)
    scoring = time.perf_counter() - t0
    values = {d: round(float(r["value"]), 4) for d, r in results.items()}
    print(json.dumps({"scoring_s": scoring, "values": values,
                      "checkpoints": {d: r["checkpoint"] for d, r in results.items()}}))


def timed_run(fixtures: Path) -> dict[str, float | dict]:
    """One whole-process run: wall seconds, child CPU seconds, and what the child reported."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--child", "--fixtures", str(fixtures)],
                          capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, **json.loads(done.stdout.strip().splitlines()[-1])}


def harness_run(fixtures: Path, out: Path) -> float:
    """Wall seconds of the full harness path: `mepbench eval --backend replay` on the released folder, which
    also builds every request, per-sample row, results.json and samples.parquet."""
    root = fixtures / "mer_unibench"
    tasks = ",".join("iemocap" if d == "iemocapfour" else d for d in DATASETS)
    command = [str(Path(sys.executable).parent / "mepbench"), "eval", "--backend", "replay", "--model",
               str(root / "AffectGPT" / "output"), "--tasks", tasks, "--data-root",
               str(root / "MERTools" / "MERBench" / "dataset"), "-T", f"wheel_dir={fixtures / 'emotion_wheel'}",
               "--output-dir", str(out)]
    t0 = time.perf_counter()
    subprocess.run(command, capture_output=True, check=True, env={**os.environ, "MEPBENCH_ALLOW_PICKLE": "1",
                                                                  "MEPBENCH_CACHE": str(out / "cache")})
    return time.perf_counter() - t0


def main() -> None:
    """Warm up, time the runs, print a JSON report with the ratios against the anchor."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fixtures", type=Path, default=DEFAULT_FIXTURES)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.fixtures)
        return
    timed_run(args.fixtures)
    runs = [timed_run(args.fixtures) for _ in range(args.repeats)]
    walls = [r["wall_s"] for r in runs]
    wall, scoring = statistics.median(walls), statistics.median(r["scoring_s"] for r in runs)
    values = runs[-1]["values"]
    with tempfile.TemporaryDirectory() as tmp:
        harness = statistics.median(harness_run(args.fixtures, Path(tmp) / str(i)) for i in range(args.repeats))
    report = {
        "workload": f"{len(DATASETS)} datasets x 7 checkpoints, best-of-7 (MER-UniBench, released AffectGPT caches)",
        "whole_process_s": {"min": min(walls), "median": wall, "max": max(walls)},
        "cpu_s_median": statistics.median(r["cpu_s"] for r in runs),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "scoring_phase_s_median": scoring,
        "anchor": {"whole_process_s": ANCHOR_WALL_S, "scoring_phase_s": ANCHOR_SCORING_S, "source": ANCHOR_SOURCE},
        "speedup_whole_process": ANCHOR_WALL_S / wall,
        "speedup_scoring_phase": ANCHOR_SCORING_S / scoring,
        "harness_eval_replay_s_median": harness,
        "speedup_harness_eval_replay": ANCHOR_WALL_S / harness,
        "values": values,
        "checkpoints": runs[-1]["checkpoints"],
        "equals_table2_to_0.01": all(round(values[d], 2) == TABLE2[d] for d in DATASETS),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
