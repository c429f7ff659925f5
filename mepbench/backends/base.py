"""The backend protocol: `generate(requests) -> responses` plus declared capabilities."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from mepbench.types import Modality, Request, Response


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do; the runner checks requests against it before sending them.

    `keyed_by_sample` marks backends whose answer depends on the sample id rather than the content
    (replayed outputs); `cacheable` is False where a cache would only duplicate the source.
    """

    modalities: frozenset[Modality] = frozenset(Modality)
    batching: bool = True
    feature_masking: bool = False
    keyed_by_sample: bool = False
    cacheable: bool = True
    extra: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class Backend(Protocol):
    """A model that answers chat requests.

    `fingerprint()` identifies the exact model (weights hash or revision, backend options) and is part of
    every cache key, so a different checkpoint never reuses another's answers.
    """

    name: str
    capabilities: Capabilities

    def fingerprint(self) -> str:
        """Stable identifier of the model and every option that changes its outputs."""
        ...

    def generate(self, requests: list[Request]) -> list[Response]:
        """Answer each request; a failing request yields a Response with `error`, never an exception."""
        ...

    def describe(self) -> dict[str, object]:
        """Metadata for results.json: model id, revision/path hash, dtype, device, options."""
        ...


class BackendWrapper:
    """Base of wrappers that change how requests are answered (cache, metering), never what the model is:
    name, capabilities, fingerprint and description are the wrapped backend's."""

    def __init__(self, backend: Backend):
        self.backend = backend
        self.name: str = backend.name
        self.capabilities: Capabilities = backend.capabilities

    def fingerprint(self) -> str:
        """The wrapped backend's fingerprint."""
        return self.backend.fingerprint()

    def describe(self) -> dict[str, object]:
        """The wrapped backend's description."""
        return self.backend.describe()
