"""Locally built models for offline tests and demos (no downloads): see `tiny_omni`; and model aliases."""

from __future__ import annotations

from pathlib import Path


def resolve_alias(model: str, cache_dir: Path) -> str:
    """Built-in model aliases (`tiny-omni`) become local paths, built on first use; others pass through."""
    if model == "tiny-omni":
        from mepbench.models.tiny_omni import ensure_tiny_omni

        return str(ensure_tiny_omni(cache_dir))
    return model
