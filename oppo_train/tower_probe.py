"""Linear probes of a checkpoint's vision tower on mep-synth: can a logistic regression on the tower's video features
tell which face cues a clip shows? It separates "the tower does not encode the cue" from "the language model does not
read it" (leaderboards/mini-repro/README.md). Probes are fit on part of a mep-synth suite and scored on the rest; use
a training-split suite (seed 1), never the eval split.

    python -m oppo_train.tower_probe --model runs/.../sft/final --n 1000 --seed 1 --out probe.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mepbench.scoring import VISUAL_CUES
from mepbench.synth import EMOTIONS, shown_emotion
from mepbench.types import Sample, VideoPart

PIXEL_SIDE = 28  # the pixel reference: grey frames averaged over time, area-downsampled to 28 x 28


def shown_expression(sample: Sample) -> str:
    """The emotion the face of a mep-synth clip shows (from its metadata, as the generative model chose it)."""
    meta = sample.metadata
    return shown_emotion(str(sample.label), meta["conditions"]["video"], meta["conflict_emotion"]["video"])


def face_targets(samples: list[Sample]) -> dict[str, np.ndarray]:
    """Per probe target, one class index per clip: each visual cue's presence (0/1) and the shown expression (6-way)."""
    targets = {cue: np.array([int(cue in s.cues.get("video", [])) for s in samples]) for cue in VISUAL_CUES}
    targets["expression"] = np.array([EMOTIONS.index(shown_expression(s)) for s in samples])
    return targets


def balanced_accuracy(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Mean per-class recall over the classes present in `truth` (chance = 1 / number of classes)."""
    return float(np.mean([np.mean(predicted[truth == c] == c) for c in np.unique(truth)]))


def fit_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, l2: float = 1e-2,
              steps: int = 200) -> np.ndarray:
    """Multinomial logistic regression with an L2 penalty on standardised features (full-batch L-BFGS; classes are
    weighted inversely to their frequency so a rare cue is not ignored); returns the predicted class of `test_x`."""
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    x = torch.as_tensor((train_x - mean) / std, dtype=torch.float64)
    y = torch.as_tensor(train_y)
    classes = int(train_y.max()) + 1
    counts = torch.bincount(y, minlength=classes).double()
    weight = torch.where(counts > 0, len(y) / (classes * counts.clamp(min=1)), torch.zeros_like(counts))
    linear = torch.nn.Linear(x.shape[1], classes, dtype=torch.float64)
    torch.nn.init.zeros_(linear.weight)
    optimizer = torch.optim.LBFGS(linear.parameters(), max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(linear(x), y, weight=weight) + l2 * linear.weight.square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        test = torch.as_tensor((test_x - mean) / std, dtype=torch.float64)
        return linear(test).argmax(1).numpy()


def pixel_features(frames: np.ndarray) -> np.ndarray:
    """The frames the model is given, grey and averaged over time, area-downsampled to PIXEL_SIDE² values."""
    grey = frames.astype(np.float64).mean(axis=(0, 3))
    side = grey.shape[0] // PIXEL_SIDE * PIXEL_SIDE
    block = grey[:side, :side].reshape(PIXEL_SIDE, side // PIXEL_SIDE, PIXEL_SIDE, side // PIXEL_SIDE)
    return block.mean(axis=(1, 3)).ravel()


def tower_features(adapter: Any) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """A function from one clip's frames to the vision tower's outputs: mean-pooled over tokens and all tokens
    concatenated (the merged tokens the thinker places in the prompt)."""
    inner = adapter.model.model

    def features(frames: np.ndarray) -> dict[str, np.ndarray]:
        processed = adapter.processor.video_processor(videos=[frames], return_tensors="pt")
        pixels = processed["pixel_values_videos"].to(inner.visual.dtype)
        with torch.no_grad():
            out = inner.get_video_features(pixels, processed["video_grid_thw"], return_dict=True).pooler_output
        tokens = torch.cat(list(out)).double().numpy()
        return {"tower_mean": tokens.mean(0), "tower_tokens": tokens.ravel()}

    return features


def probe_report(features: dict[str, np.ndarray], targets: dict[str, np.ndarray], train_fraction: float = 0.8,
                 l2: float = 1e-2) -> dict[str, dict[str, float]]:
    """Held-out balanced accuracy of a probe per feature set and target; the first `train_fraction` of the clips fit
    the probes, the rest score them. Targets absent from either part are skipped."""
    n = len(next(iter(targets.values())))
    cut = round(n * train_fraction)
    report: dict[str, dict[str, float]] = {}
    for name, x in features.items():
        report[name] = {}
        for target, y in targets.items():
            if len(np.unique(y[:cut])) < 2 or len(np.unique(y[cut:])) < 2:
                continue
            report[name][target] = balanced_accuracy(y[cut:], fit_probe(x[:cut], y[:cut], x[cut:], l2))
    return report


def run_probe(model: str, n: int, seed: int, cache_dir: Path, train_fraction: float = 0.8, l2: float = 1e-2,
              limit: int | None = None) -> dict[str, Any]:
    """Load `model`, extract tower and pixel features for the clips of mep-synth suite (n, seed) (the first `limit`),
    fit the probes."""
    from mepbench.tasks import TaskContext, load_mep_synth
    from oppo_train.config import ModelConfig
    from oppo_train.policy import load_adapter

    adapter = load_adapter(ModelConfig(path=model), cache_dir)
    adapter.model.eval()
    samples = load_mep_synth(TaskContext(data_root=None, cache_dir=cache_dir), n=n, seed=seed, limit=limit).samples
    extract = tower_features(adapter)
    rows: dict[str, list[np.ndarray]] = {"pixels": []}
    for sample in samples:
        frames = adapter.load_video(VideoPart(sample.video))
        rows["pixels"].append(pixel_features(frames))
        for name, value in extract(frames).items():
            rows.setdefault(name, []).append(value)
    features = {name: np.stack(values) for name, values in rows.items()}
    targets = face_targets(samples)
    return {"model": model, "suite": {"n": n, "seed": seed}, "clips": len(samples), "train_fraction": train_fraction,
            "l2": l2, "chance": {t: 1 / len(np.unique(y)) for t, y in targets.items()},
            "positives": {t: int((y > 0).sum()) for t, y in targets.items() if t != "expression"},
            "balanced_accuracy": probe_report(features, targets, train_fraction, l2)}


def main(argv: list[str] | None = None) -> None:
    """Probe one checkpoint and print (or write) the report as JSON."""
    from mepbench import default_cache_dir

    p = argparse.ArgumentParser(prog="python -m oppo_train.tower_probe", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="checkpoint folder or mepbench alias")
    p.add_argument("--n", type=int, default=1000, help="clips of the mep-synth suite")
    p.add_argument("--seed", type=int, default=1, help="suite seed (1 = the mini reproduction's train split)")
    p.add_argument("--limit", type=int, default=None, help="probe only the first LIMIT clips")
    p.add_argument("--train-fraction", type=float, default=0.8)
    p.add_argument("--l2", type=float, default=1e-2)
    p.add_argument("--cache-dir", type=Path, default=None)
    p.add_argument("--out", type=Path, help="write the JSON report here")
    args = p.parse_args(argv)
    report = run_probe(args.model, args.n, args.seed, args.cache_dir or default_cache_dir(), args.train_fraction,
                       args.l2, args.limit)
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    sys.stdout.write(text + "\n")


if __name__ == "__main__":
    main()
