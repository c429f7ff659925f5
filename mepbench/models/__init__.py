"""Local models for offline runs (no downloads) and their aliases: `tiny-omni`, the trained default shipped in the
package (`leaderboards/mini-repro/` says how it was made), and `tiny-omni-random`, the random test model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TRAINED_TINY_OMNI = Path(__file__).parent / "tiny-omni"
_LAZY = {"build_tiny_omni", "ensure_tiny_omni", "INIT_RANGE"}  # in tiny_omni, which imports torch and transformers
__all__ = ["INIT_RANGE", "TRAINED_TINY_OMNI", "build_tiny_omni", "ensure_tiny_omni", "resolve_alias"]


def __getattr__(name: str) -> Any:
    """The tiny-omni builders, imported on first use."""
    if name not in _LAZY:
        raise AttributeError(f"module 'mepbench.models' has no attribute {name!r}")
    from mepbench.models import tiny_omni

    return getattr(tiny_omni, name)


def resolve_alias(model: str, cache_dir: Path) -> str:
    """Built-in model aliases become local paths (the random model is built on first use); others pass through."""
    if model == "tiny-omni":
        if not (TRAINED_TINY_OMNI / "model.safetensors").is_file():
            raise FileNotFoundError(f"the trained tiny-omni is missing from {TRAINED_TINY_OMNI}; reinstall mepbench, "
                                    "or rebuild it with `oppo-train repro --config mini_repro install_default=true`")
        return str(TRAINED_TINY_OMNI)
    if model == "tiny-omni-random":
        from mepbench.models.tiny_omni import ensure_tiny_omni

        return str(ensure_tiny_omni(cache_dir))
    return model
