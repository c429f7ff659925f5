"""The scripted backend: a deterministic stand-in model for testing a task, a scorer or a pipeline without weights
(`mepbench eval --backend scripted --model NAME`). It answers every request with a fixed text (`answer=`) or with a
label drawn from a hash of the sample id and variant (`labels=`), counts what it was asked, and fails chosen sample
ids (`fail_ids=`) so error paths can be exercised."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from mepbench.backends.base import Capabilities
from mepbench.types import Request, Response

LABELS = ("happy", "sad", "angry", "surprised", "fearful", "neutral")


def _names(value: str | Iterable[str]) -> tuple[str, ...]:
    """A comma-separated string (as `--model-arg` gives it) or an iterable of names."""
    items = value.split(",") if isinstance(value, str) else value
    return tuple(item.strip() for item in items if item.strip())


class ScriptedBackend:
    """Answers from a fixed text or a content hash; records every request in `asked`."""

    name = "scripted"

    def __init__(self, model: str = "scripted", answer: str | None = None, labels: str | Iterable[str] = LABELS,
                 fail_ids: str | Iterable[str] = (), capabilities: Capabilities = Capabilities(feature_masking=True),
                 batch_size: int | None = None):
        """`batch_size` is taken as the runner gives it to every backend; scripted answers need no batching."""
        self.model, self.answer, self.labels = model, answer, _names(labels)
        self.fail_ids, self.capabilities = frozenset(_names(fail_ids)), capabilities
        if not self.labels:
            raise ValueError("scripted backend: labels must name at least one label")
        self.asked: list[Request] = []

    def fingerprint(self) -> str:
        """The script: fixed answer or hashed labels. The failing ids are not part of it: they stand for transient
        errors of the same model (failed answers are never cached, so a rerun asks them again)."""
        script = repr(self.answer) if self.answer is not None else "hash:" + ",".join(self.labels)
        return f"scripted:{self.model}:{script}"

    def describe(self) -> dict[str, object]:
        """The script, for results.json."""
        return {"backend": self.name, "model": self.model, "answer": self.answer, "labels": list(self.labels),
                "fail_ids": sorted(self.fail_ids)}

    def reply(self, request: Request) -> str:
        """The text answered to `request`: the fixed answer, else a hashed label in the think/answer format."""
        if self.answer is not None:
            return self.answer
        digest = int(hashlib.sha256(f"{request.sample_id}/{request.variant}".encode()).hexdigest(), 16)
        return f"<think>cues</think><answer>{self.labels[digest % len(self.labels)]}</answer>"

    def generate(self, requests: list[Request]) -> list[Response]:
        """One response per request; the ids in `fail_ids` get an error response."""
        self.asked.extend(requests)
        return [Response(error=f"scripted failure for {r.sample_id}") if r.sample_id in self.fail_ids
                else Response(text=self.reply(r), completion_tokens=5) for r in requests]
