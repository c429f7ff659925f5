"""Shared steps of building a local test model: the atomic directory swap, the completeness check and the
model card / build stamp, so tiny-omni and tiny-text are built and reused the same way."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

BUILD_INFO = "mepbench_build.json"


def build_atomically(out: Path, is_complete: Callable[[Path], bool], write: Callable[[Path], None]) -> Path:
    """Run `write` into a temp dir beside `out` and rename it into place, unless `out` is already complete.

    Concurrent builders never expose a half-written directory: the first finished build wins."""
    if is_complete(out):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        write(tmp)
        stale = None
        if out.exists():
            stale = Path(tempfile.mkdtemp(prefix=f".{out.name}.stale.", dir=out.parent))
            os.replace(out, stale / out.name)
        try:
            os.rename(tmp, out)
        except OSError:
            if not is_complete(out):
                raise
        if stale is not None:
            shutil.rmtree(stale, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def is_complete(path: Path, required: Sequence[str], version: int | str, seed: int) -> bool:
    """True when `path` holds every required file and its build stamp names this recipe version and seed."""
    if not all((path / f).is_file() for f in (*required, BUILD_INFO)):
        return False
    try:
        info = json.loads((path / BUILD_INFO).read_text())
    except (OSError, ValueError):
        return False
    return info == {"version": version, "seed": seed}


def save_random_model(tmp: Path, model_class: Any, config: Any, tok: Any, seed: int) -> Any:
    """Initialise `model_class(config)` from `seed` (deterministic weights), save it with neutral generation
    settings and the tokenizer into `tmp`; returns the model."""
    import torch

    torch.manual_seed(seed)
    return save_model(tmp, model_class(config).eval(), config, tok)


def save_model(tmp: Path, model: Any, config: Any, tok: Any) -> Any:
    """Save `model` with neutral generation settings and the tokenizer into `tmp`; returns the model."""
    from transformers import GenerationConfig

    from mepbench.backends.adapters.base import quiet_progress

    model.generation_config = GenerationConfig(eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id)
    with quiet_progress():
        model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    return model


def finish_build(tmp: Path, model: Any, tok: Any, card: str, version: int | str, seed: int) -> None:
    """Write the model card (random weights, size, seed) and the build stamp; make the files read-only."""
    params = sum(p.numel() for p in model.parameters())
    (tmp / "README.md").write_text(card.format(seed=seed, params=params, vocab=len(tok)))
    (tmp / BUILD_INFO).write_text(json.dumps({"version": version, "seed": seed}))
    tmp.chmod(0o755)
    for f in tmp.iterdir():
        f.chmod(0o644)
