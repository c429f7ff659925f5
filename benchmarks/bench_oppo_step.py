"""OPPO step time over the baseline GRPO step time on the same batch (target < 1.5×; docs/training.md).

Both trainers load the same checkpoint; one batch of prompts × G completions is sampled once and reused, so the
timed part is what differs per variant: scoring (rewards, cue matching), the no-grad passes (reference; OPPO adds
one video-masked and one audio-masked forward) and the gradient update. Generation, identical for every variant,
is timed separately and reported with and without it:
  python benchmarks/bench_oppo_step.py --prompts 2 --generations 4 --max-new-tokens 64 --repeats 5
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from oppo_train.config import RLConfig, load_config
from oppo_train.rl import RLTrainer, Rollout


def make_trainer(variant: str, args: argparse.Namespace, cache: Path) -> RLTrainer:
    """A trainer for `variant` on tiny-omni (or --model) + mep-synth; no checkpoints or metrics files kept."""
    overrides = [f"variant={variant}", f"model.path={args.model}", f"data.n={max(4, args.prompts)}",
                 f"prompts_per_step={args.prompts}", f"micro_batch_prompts={args.prompts}",
                 f"num_generations={args.generations}", f"max_new_tokens={args.max_new_tokens}",
                 "rewards.embedder=exact", f"output_dir={cache / 'runs' / variant}", f"cache_dir={cache}",
                 "resume=never", "checkpoint_every=0", f"model.gradient_checkpointing={args.gradient_checkpointing}"]
    return RLTrainer(load_config(RLConfig, None, overrides))


def time_step(trainer: RLTrainer, batch: list[Rollout], repeats: int) -> list[float]:
    """Wall times of score + precompute + update on copies of `batch`."""
    times = []
    for _ in range(repeats):
        rollouts = copy.deepcopy(batch)
        start = time.perf_counter()
        trainer.score(rollouts)
        for k, r in enumerate(rollouts):
            trainer.precompute(r, k)
        trainer.update(rollouts)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    """Print a JSON report: per-variant median step times, the ratios to the baseline, and generation time."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny-omni")
    parser.add_argument("--prompts", type=int, default=2)
    parser.add_argument("--generations", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1: stable on shared CPUs)")
    parser.add_argument("--variants", default="baseline,romni,papo,papo_dual,oppo")
    parser.add_argument("--completions", choices=("reference", "sampled"), default="reference",
                        help="reference: each prompt's reference reasoning G times (its clauses name real cues, so "
                             "OPPO routes tokens as it would for a trained model); sampled: the random model's own")
    parser.add_argument("--gradient-checkpointing", action="store_true", help="as in the paper's 7B recipe")
    parser.add_argument("--cache-dir", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cache = args.cache_dir or Path(tempfile.mkdtemp(prefix="oppo-bench-"))
    trainers = {v: make_trainer(v, args, cache) for v in args.variants.split(",")}
    if "baseline" not in trainers or "oppo" not in trainers:
        parser.error("--variants must include baseline and oppo")
    sampler = trainers["baseline"]
    start = time.perf_counter()
    batch = [sampler.generate(sampler.local_samples(0), 0)]
    generate_s = time.perf_counter() - start
    if args.completions == "reference":
        rows = batch[0].samples
        batch = [sampler.make_rollout(rows, [s.reasoning for s in rows])]
    runs: dict[str, list[float]] = {v: [] for v in trainers}
    for _ in range(args.repeats):  # interleaved, so load changes on a shared machine hit every variant alike
        for variant, trainer in trainers.items():
            runs[variant] += time_step(trainer, batch, 1)
    medians = {v: statistics.median(times) for v, times in runs.items()}
    base = medians["baseline"]
    probe = copy.deepcopy(batch)
    trainers["oppo"].score(probe)
    routed = trainers["oppo"].route(probe[0]) if "oppo" in trainers else {}
    report = {
        "device": str(sampler.accelerator.device), "threads": args.threads, "model": args.model,
        "gradient_checkpointing": args.gradient_checkpointing,
        "completions": args.completions, "rows": batch[0].completion_ids.shape[0],
        "completion_tokens": int(batch[0].completion_mask.sum()),
        "routed_tokens": {m: int(v.sum()) for m, v in routed.items()},
        "prompt_tokens": int(batch[0].inputs["input_ids"].shape[1]), "generate_s": generate_s,
        "step_s": medians, "ratio_to_baseline": {v: m / base for v, m in medians.items()},
        "ratio_with_generation": {v: (m + generate_s) / (base + generate_s) for v, m in medians.items()},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
