"""Backends: the protocol, and a lazy registry so heavy SDKs load only when their backend is used."""

from __future__ import annotations

from typing import Any

from mepbench.backends.base import Backend, Capabilities
from mepbench.plugins import find_plugin, plugin_names

BUILTIN: dict[str, str] = {
    "hf": "mepbench.backends.hf:HFBackend",
    "openai": "mepbench.backends.openai:OpenAIBackend",
    "replay": "mepbench.backends.replay:ReplayBackend",
    "scripted": "mepbench.backends.scripted:ScriptedBackend",
    "vllm": "mepbench.backends.vllm:VLLMBackend",
}


def backend_names() -> list[str]:
    """Built-in names plus those in the `mepbench.backends` entry-point group."""
    return plugin_names(BUILTIN, "mepbench.backends")


def create_backend(name: str, model: str, **options: Any) -> Backend:
    """Import and construct backend `name` for `model` with backend-specific options."""
    return find_plugin(name, BUILTIN, "mepbench.backends", "backend")(model, **options)


__all__ = ["Backend", "Capabilities", "backend_names", "create_backend"]
