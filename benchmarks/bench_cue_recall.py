"""Cue recall on CPU with the default embedder: one encode of all unique cue texts (through `EmbeddingCache`)
vs a naive path that encodes each (reference, prediction) sample pair on its own, without a cache.

Both paths score the same synthetic data (300 samples × ~10 reference and ~10 predicted cues by default) and
should agree (only a cosine within float32 noise of τ could flip a record). Prints seconds and speed-up as JSON:
  HF_HUB_OFFLINE=1 python benchmarks/bench_cue_recall.py --samples 300 --cues 10
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from mepbench.scoring import Cues, EmbeddingCache, SentenceEmbedder, cue_recall
from mepbench.scoring.cues import DEFAULT_LEXICON

QUALIFIERS = ("", "slightly ", "clearly ", "a very ", "an obvious ", "a brief ", "a strong ", "a faint ")


def synthetic(n: int, cues_per_sample: int, seed: int) -> tuple[list[Cues], list[Cues]]:
    """Reference and predicted cues: references are qualified lexicon cues; predictions restate about half of them
    with another qualifier and add other cues."""
    rng = np.random.default_rng(seed)

    def qualified(base: str) -> str:
        return QUALIFIERS[int(rng.integers(len(QUALIFIERS)))] + base

    refs, preds = [], []
    for _ in range(n):
        ref, pred = {}, {}
        for m in ("video", "audio"):
            bases = list(DEFAULT_LEXICON[m])
            k = max(1, cues_per_sample // 2 + int(rng.integers(-1, 2)))
            chosen = [bases[i] for i in rng.choice(len(bases), k, replace=False)]
            kept = [qualified(b) for b in chosen if rng.random() < 0.5]
            others = [qualified(bases[i]) for i in rng.choice(len(bases), k - len(kept), replace=False)]
            ref[m], pred[m] = [qualified(b) for b in chosen], kept + others
        refs.append(Cues.from_dict(ref))
        preds.append(Cues.from_dict(pred))
    return refs, preds


def main() -> None:
    """Time both paths, check they agree, print a JSON report."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--cues", type=int, default=10, help="reference (and predicted) cues per sample")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    refs, preds = synthetic(args.samples, args.cues, args.seed)
    model = SentenceEmbedder()
    model.encode([q + c for m in ("video", "audio") for c in DEFAULT_LEXICON[m] for q in QUALIFIERS[:2]])  # warm-up

    t0 = time.perf_counter()
    cache = EmbeddingCache(model)
    fast = cue_recall(refs, preds, cache, resamples=200)
    fast_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    naive = [cue_recall([r], [p], model, resamples=1).records[0] for r, p in zip(refs, preds)]
    naive_s = time.perf_counter() - t0

    differ = sum(_rounded(a.recall) != _rounded(b.recall) for a, b in zip(fast.records, naive))
    texts = sum(len(r) + len(p) for r, p in zip(refs, preds))
    print(json.dumps({
        "samples": args.samples, "cue_texts": texts, "unique_texts": cache.encoded,
        "cached_s": round(fast_s, 3), "naive_s": round(naive_s, 3), "speedup": round(naive_s / fast_s, 2),
        "records_differing": differ, "overall_recall": round(fast.recall["overall"].value, 4),
    }, indent=2))


def _rounded(values: dict[str, float | None]) -> dict[str, float | None]:
    """Recall values rounded so float32 noise between the two paths does not count as disagreement."""
    return {k: None if v is None else round(v, 6) for k, v in values.items()}


if __name__ == "__main__":
    main()
