"""Backends: the protocol, and a lazy registry so heavy SDKs load only when their backend is used."""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import entry_points
from typing import Any

from mepbench.backends.base import Backend, Capabilities

BUILTIN: dict[str, str] = {
    "hf": "mepbench.backends.hf:HFBackend",
    "openai": "mepbench.backends.openai:OpenAIBackend",
    "replay": "mepbench.backends.replay:ReplayBackend",
    "scripted": "mepbench.backends.scripted:ScriptedBackend",
    "vllm": "mepbench.backends.vllm:VLLMBackend",
}


def backend_names() -> list[str]:
    """Built-in names plus those in the `mepbench.backends` entry-point group."""
    return sorted(set(BUILTIN) | {ep.name for ep in entry_points(group="mepbench.backends")})


def create_backend(name: str, model: str, **options: Any) -> Backend:
    """Import and construct backend `name` for `model` with backend-specific options."""
    if name in BUILTIN:
        module, _, attr = BUILTIN[name].partition(":")
        cls = getattr(import_module(module), attr)
    else:
        eps = [ep for ep in entry_points(group="mepbench.backends") if ep.name == name]
        if not eps:
            raise KeyError(f"unknown backend {name!r}; known: {', '.join(backend_names())}")
        cls = eps[0].load()
    return cls(model, **options)


__all__ = ["Backend", "Capabilities", "backend_names", "create_backend"]
