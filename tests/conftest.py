"""Shared fixtures: the released-data fixtures folder, a session cache dir, and a scripted backend."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from mepbench.backends.base import Capabilities
from mepbench.types import Request, Response

SHARED = Path(os.environ.get("MEPBENCH_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def unavailable(message: str, require_env: str) -> None:
    """Skip with `message`, or fail when `require_env`=1 (CI sets it so a missing resource is never a skip)."""
    if os.environ.get(require_env) == "1":
        pytest.fail(f"{require_env}=1 but {message}")
    pytest.skip(message)


def shared_fixture(*parts: str) -> Path:
    """Path under ../shared/fixtures; skips (or fails when MEPBENCH_REQUIRE_FIXTURES=1) if absent."""
    path = SHARED.joinpath("fixtures", *parts)
    if not path.exists():
        unavailable(f"released-data fixture not available: {path}", "MEPBENCH_REQUIRE_FIXTURES")
    return path


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder shared by the session (tiny-omni and mep-synth are built once into it)."""
    return tmp_path_factory.mktemp("mepbench-cache")


class ScriptedBackend:
    """A deterministic fake model for testing the layers above backends: answers from a content hash
    (or a fixed answer), counts every request it is asked, and can fail chosen sample ids."""

    name = "scripted"

    def __init__(self, answer: str | None = None, fail_ids: frozenset[str] = frozenset(),
                 capabilities: Capabilities = Capabilities(feature_masking=True)):
        self.answer, self.fail_ids, self.capabilities = answer, fail_ids, capabilities
        self.asked: list[Request] = []

    def fingerprint(self) -> str:
        return f"scripted:{self.answer}"

    def describe(self) -> dict[str, object]:
        return {"backend": self.name}

    def generate(self, requests: list[Request]) -> list[Response]:
        self.asked.extend(requests)
        out = []
        for r in requests:
            if r.sample_id in self.fail_ids:
                out.append(Response(error=f"scripted failure for {r.sample_id}"))
                continue
            labels = ["happy", "sad", "angry", "surprised", "fearful", "neutral"]
            digest = int(hashlib.sha256(f"{r.sample_id}/{r.variant}".encode()).hexdigest(), 16)
            text = self.answer or f"<think>cues</think><answer>{labels[digest % len(labels)]}</answer>"
            out.append(Response(text=text, completion_tokens=5))
        return out


@pytest.fixture
def scripted() -> ScriptedBackend:
    """A fresh scripted backend."""
    return ScriptedBackend()
