"""Local models for offline runs (no downloads) and their aliases: `tiny-omni`, the trained default shipped in the
package (`leaderboards/mini-repro/` says how it was made), and `tiny-omni-random`, the random test model."""

from __future__ import annotations

from pathlib import Path

TRAINED_TINY_OMNI = Path(__file__).parent / "tiny-omni"


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
