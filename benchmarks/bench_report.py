"""Report rendering at scale: 10 runs × 1,000 samples (every variant and probe row of each), time and bytes.

The source is a real harness run: mep-synth with `--samples` generated clips, answered by a scripted responder
that gives each sample's reference reasoning padded to `--response-chars` (a long-reasoning model) and answers
the probes, so scoring, cue extraction and recall are the harness's own. Its run directory is then replicated
into `--runs` run directories (a model name each) — the shape of a leaderboard of many models on one benchmark.
With `--source RUN_DIR`, rows of that run are replicated (ids suffixed) up to `--samples` instead.
Timed: a cold build (thumbnails decoded) and a warm rebuild (thumbnails reused), each a fresh process.
  python benchmarks/bench_report.py [--runs 10] [--samples 1000] [--work DIR] [--source RUN_DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROBE_MARK = "Please answer with only"
TASK = "mep-synth-bench"


class PaddedResponder:
    """A deterministic backend: reference reasoning (padded) for the emotion question, "yes" to every probe."""

    name = "bench-responder"

    def __init__(self, cache: Path, chars: int):
        from mepbench.backends.base import Capabilities

        self.capabilities = Capabilities(feature_masking=True)
        self.cache, self.chars = cache, chars

    def fingerprint(self) -> str:
        return f"bench-responder:{self.chars}"

    def describe(self) -> dict[str, object]:
        return {"backend": self.name, "response_chars": self.chars}

    def generate(self, requests: list) -> list:
        from mepbench.types import Response

        manifest = next((self.cache / "data").glob("mep-synth-*")) / "manifest.jsonl"
        rows = [json.loads(line) for line in manifest.read_text().splitlines()]
        ids = [r["id"] for r in rows]
        position = {sample_id: i for i, sample_id in enumerate(ids)}
        reasoning = {}
        for row in rows:
            think, _, answer = row["reasoning"].partition("</think>")
            reasoning[row["id"]] = (think + " ") * max(1, self.chars // max(len(think), 1)) + "</think>" + answer
        out = []
        for r in requests:
            # a masked variant answers with another clip's reasoning: every response text is distinct
            shift = 0 if r.variant == "full" else 1 + len(r.variant)
            text = reasoning[ids[(position[r.sample_id] + shift) % len(ids)]]
            out.append(Response(text="yes" if PROBE_MARK in r.messages[-1].text() else text, completion_tokens=1))
        return out


def source_run(work: Path, samples: int, chars: int) -> Path:
    """A run of the harness on `samples` generated mep-synth clips, answered by `PaddedResponder`."""
    import yaml

    from mepbench.results import write_run
    from mepbench.runner import EvalConfig, run_eval
    from mepbench.tasks.registry import builtin_spec_dir

    spec = yaml.safe_load((builtin_spec_dir() / "mep-synth.yaml").read_text())
    spec.update(task=TASK)
    spec["dataset"]["n"] = samples
    (work / "specs").mkdir(parents=True, exist_ok=True)
    (work / "specs" / f"{TASK}.yaml").write_text(yaml.safe_dump(spec))
    config = EvalConfig(tasks=[TASK], include_paths=[work / "specs"], cache_dir=work / "cache", bootstrap=200,
                        use_cache=False)
    write_run(run_eval(config, backend=PaddedResponder(work / "cache", chars)), config, work / "source")
    return work / "source"


def replicate(source: Path, work: Path, runs: int, samples: int) -> list[Path]:
    """`runs` copies of `source`, each under its own model name, its rows repeated (ids suffixed) to `samples`."""
    import pandas as pd

    import shutil

    from mepbench.run_dir import load_run
    from mepbench.sample_table import write_samples

    frame = load_run(source).samples
    results = json.loads((source / "results.json").read_text(encoding="utf-8"))
    ids = list(dict.fromkeys(frame["sample_id"]))
    if len(ids) < samples:
        parts = []
        for k in range(samples):
            part = frame[frame["sample_id"] == ids[k % len(ids)]].copy()
            part["sample_id"] = part["sample_id"] + (f"-x{k // len(ids)}" if k >= len(ids) else "")
            parts.append(part)
        frame = pd.concat(parts, ignore_index=True)
    out = []
    for i in range(runs):
        folder = work / f"run-{i:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        doc = json.loads(json.dumps(results))
        doc["config"]["model"] = f"model-{i:02d}"
        (folder / "results.json").write_text(json.dumps(doc))
        write_samples(frame.to_dict("records"), folder / "samples.parquet")
        if (source / "posters").is_dir():
            shutil.copytree(source / "posters", folder / "posters", dirs_exist_ok=True)
        out.append(folder)
    return out


def child(out: Path, run_dirs: list[str]) -> None:
    """Build the report once and print seconds as JSON."""
    from mepbench.report import build_report

    t0 = time.perf_counter()
    build_report(run_dirs, out)
    print(json.dumps({"seconds": time.perf_counter() - t0}))


def timed_build(out: Path, run_dirs: list[Path]) -> dict[str, float]:
    """One build in a fresh process: build seconds, process wall seconds, peak RSS of the child."""
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--child", str(out), *map(str, run_dirs)],
                          capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "process_wall_s": wall, "peak_rss_mib": peak}


def sizes(out: Path) -> dict[str, int]:
    """Bytes by kind of output file."""
    kinds = {"index": "index.html", "run_pages": "run-*.html", "explorer_pages": "samples-*.html",
             "thumbnails": "media/*.jpg"}
    result = {k: sum(p.stat().st_size for p in out.glob(g)) for k, g in kinds.items()}
    result["largest_page"] = max(p.stat().st_size for p in out.glob("*.html"))
    result["total"] = sum(v for k, v in result.items() if k != "largest_page")
    return result


def main() -> None:
    """Make the runs, build cold and warm, print a JSON report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--response-chars", type=int, default=1500)
    parser.add_argument("--source", type=Path, help="replicate this run directory instead of making one")
    parser.add_argument("--work", type=Path, help="working folder (default: a temporary one)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[0]), args.child[1:])
        return
    import pyarrow.parquet as pq

    work = args.work or Path(tempfile.mkdtemp(prefix="bench-report-"))
    t0 = time.perf_counter()
    source = args.source or source_run(work, args.samples, args.response_chars)
    run_dirs = replicate(source, work, args.runs, args.samples)
    setup = time.perf_counter() - t0
    rows = sum(pq.read_metadata(d / "samples.parquet").num_rows for d in run_dirs)
    cold = timed_build(work / "report", run_dirs)
    warm = timed_build(work / "report", run_dirs)
    print(json.dumps({"runs": args.runs, "samples_per_run": args.samples, "rows_total": rows,
                      "response_chars": None if args.source else args.response_chars, "setup_s": round(setup, 1),
                      "cold": cold, "warm": warm, "bytes": sizes(work / "report"), "work": str(work)}, indent=1))


if __name__ == "__main__":
    main()
