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


def __getattr__(name: str) -> Any:
    """The engine-prompt builders of the vLLM backend (`vllm_inputs`), imported on first use."""
    if name not in ("build_engine_prompt", "media_limits"):
        raise AttributeError(f"module 'mepbench.backends' has no attribute {name!r}")
    from mepbench.backends import vllm_inputs

    return getattr(vllm_inputs, name)


__all__ = ["Backend", "Capabilities", "backend_names", "build_engine_prompt", "create_backend", "media_limits"]
