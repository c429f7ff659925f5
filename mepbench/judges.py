"""Judge roles: models that extract cues, open-set labels or steps, or score reasoning, named per role
(`--judge ROLE=MODEL[@backend]`, e.g. `--judge extract=Qwen/Qwen2.5-7B-Instruct@vllm`) and built through
the same backend registry as evaluated models; every judge answer is cached like any response."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mepbench.backends import Backend, create_backend
from mepbench.backends.cached import CachedBackend
from mepbench.cache import ResponseCache
from mepbench.models import resolve_alias

DEFAULT_ROLE = "default"


def parse_judges(values: list[str]) -> dict[str, str]:
    """`ROLE=MODEL[@backend]` items (a bare `MODEL[@backend]` is the default role) → role → spec."""
    out: dict[str, str] = {}
    for value in values:
        role, sep, spec = value.partition("=")
        role, spec = (role.strip(), spec.strip()) if sep else (DEFAULT_ROLE, value.strip())
        if not role or not spec:
            raise ValueError(f"--judge expects ROLE=MODEL[@backend] or MODEL[@backend], got {value!r}")
        out[role] = spec
    return out


def split_spec(spec: str, default_backend: str = "hf") -> tuple[str, str]:
    """`MODEL[@backend]` → (model, backend)."""
    model, sep, backend = spec.rpartition("@")
    return (model, backend) if sep and model and "/" not in backend else (spec, default_backend)


def build_judges(specs: dict[str, str], cache_dir: Path, options: dict[str, Any] | None = None,
                 batch_size: int = 8) -> dict[str, Backend]:
    """One cached backend per distinct spec, shared by the roles that name it."""
    built: dict[str, Backend] = {}
    cache = ResponseCache(Path(cache_dir) / "responses")
    for spec in dict.fromkeys(specs.values()):
        model, backend = split_spec(spec)
        built[spec] = CachedBackend(create_backend(backend, resolve_alias(model, cache_dir), batch_size=batch_size,
                                                   **(options or {})), cache)
    return {role: built[spec] for role, spec in specs.items()}
