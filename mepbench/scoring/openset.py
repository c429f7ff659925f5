"""MER-UniBench's two LLM steps (benchmarks.md §1.2 steps 2–3, AffectGPT `toolkit/utils/qwen.py`): open-set
emotion extraction from a free-text answer, and the sentiment call on the extracted list. The prompts are
the published ones (paper App. E), quoted because they are part of the protocol.

Modes: `deterministic` (greedy, cacheable, our default) and `upstream` (the published sampling: temperature
0.7, top-p 0.8, 512 tokens; upstream's repetition penalty 1.05 is not applied — our hf backend decodes
without penalties — which the results record).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from mepbench.backends.base import Backend
from mepbench.types import GenerationParams, Message, Request, TextPart

OPENSET_PROMPT = (
    "Please assume the role of an expert in the field of emotions. We provide clues that may be related to the "
    "emotions of the characters. Based on the provided clues, please identify the emotional states of the main "
    "character. The main character is the one with the most detailed clues. Please separate different emotional "
    "categories with commas and output only the clearly identifiable emotional categories in a list format. If "
    "none are identified, please output an empty list. Input: We cannot recognize his emotional state; Output: [] "
    "Input: His emotional state is happy, sad, and angry; Output: [happy, sad, angry] Input: {reason}; Output:")
SENTIMENT_PROMPT = (
    "Please act as an expert in the field of emotions. We provide a few words to describe the emotions of a "
    "character. Please choose the most likely sentiment from the given candidates: [positive, negative, neutral] "
    "Please direct output answer without analyzing process. Input: [joyful]; Output: positive Input: []; Output: "
    "neutral Input: {openset}; Output:")
MODES = {
    "deterministic": GenerationParams(max_new_tokens=512, temperature=0.0),
    "upstream": GenerationParams(max_new_tokens=512, temperature=0.7, top_p=0.8),
}
_LEAD = re.compile(r"^\s*(?:output|input|输出|输入)?\s*[:：]?\s*", re.I)


def clean_response(text: str) -> str:
    """Upstream's post-processing: drop a leading "Output"/"Input"/colon (and the Chinese forms) and newlines."""
    return _LEAD.sub("", text, count=1).replace("\n", "").strip()


class OpenSetSource(Protocol):
    """Where open-set lists and sentiment words come from: an extractor model, or released caches."""

    def openset(self, texts: Sequence[str], ids: Sequence[str]) -> list[str | None]:
        """One list string per answer text; None where extraction failed."""
        ...

    def sentiment(self, opensets: Sequence[str], ids: Sequence[str]) -> list[str | None]:
        """One sentiment word per list string; None where the call failed."""
        ...

    def describe(self) -> str:
        """Identifies the source in results.json."""
        ...


class LLMOpenSet:
    """The published two-call extraction through any backend (the paper used Qwen2.5-7B-Instruct)."""

    def __init__(self, backend: Backend, mode: str = "deterministic"):
        if mode not in MODES:
            raise ValueError(f"unknown extraction mode {mode!r}; choose {sorted(MODES)}")
        self.backend, self.mode, self.params = backend, mode, MODES[mode]

    def _ask(self, prompts: list[str], ids: Sequence[str]) -> list[str | None]:
        requests = [Request((Message("user", (TextPart(p),)),), self.params, sample_id=i, variant="mer-extract")
                    for p, i in zip(prompts, ids)]
        return [clean_response(r.text) if r.ok else None for r in self.backend.generate(requests)]

    def openset(self, texts: Sequence[str], ids: Sequence[str]) -> list[str | None]:
        """Ask for the emotion list of each answer."""
        return self._ask([OPENSET_PROMPT.format(reason=t) for t in texts], ids)

    def sentiment(self, opensets: Sequence[str], ids: Sequence[str]) -> list[str | None]:
        """Ask for the sentiment of each extracted list."""
        return self._ask([SENTIMENT_PROMPT.format(openset=o) for o in opensets], ids)

    def describe(self) -> str:
        """Extractor fingerprint and mode."""
        return f"llm:{self.backend.fingerprint()}:{self.mode}"


@dataclass
class CachedOpenSet:
    """Released extraction caches (AffectGPT's `-openset.npz` / `-openset-sentiment.npz`), keyed by clip name."""

    opensets: Mapping[str, str]
    sentiments: Mapping[str, str] | None
    source: str

    def openset(self, texts: Sequence[str], ids: Sequence[str]) -> list[str | None]:
        """The cached list of each clip (None where the cache lacks it)."""
        return [self.opensets.get(i) for i in ids]

    def sentiment(self, opensets: Sequence[str], ids: Sequence[str]) -> list[str | None]:
        """The cached sentiment of each clip."""
        if self.sentiments is None:
            raise ValueError(f"{self.source}: no -openset-sentiment.npz cache beside the answers")
        return [self.sentiments.get(i) for i in ids]

    def describe(self) -> str:
        """The cache file."""
        return f"cache:{self.source}"
