"""Parsing of `<think>…</think><answer>…</answer>` completions (the OPPO / HumanOmniV2 output format)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_THINK = re.compile(r"<think>(.*?)</think>", re.S | re.I)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.S | re.I)
_STRICT = re.compile(r"^\s*<think>.*?</think>\s*<answer>.*?</answer>\s*$", re.S | re.I)


@dataclass(frozen=True)
class ParsedAnswer:
    """The parts of a completion: whether it follows the format, the reasoning and the answer text."""

    format_ok: bool
    think: str
    answer: str
    has_answer_tag: bool

    @property
    def words(self) -> list[str]:
        """Comma/semicolon/'and'-separated answer words, lower-cased (open-vocabulary answers)."""
        items = re.split(r"[,;/]|\band\b", self.answer.lower())
        return [w.strip(" .!?\"'") for w in items if w.strip(" .!?\"'")]


def parse_answer(text: str) -> ParsedAnswer:
    """Split a completion; without an `<answer>` tag the whole text is the answer (flagged)."""
    think = _THINK.search(text)
    answer = _ANSWER.search(text)
    return ParsedAnswer(
        format_ok=bool(_STRICT.match(text)),
        think=think.group(1).strip() if think else "",
        answer=answer.group(1).strip() if answer else text.strip(),
        has_answer_tag=answer is not None,
    )


def match_label(answer: str, labels: list[str], synonyms: dict[str, str] | None = None) -> str | None:
    """The label (or synonym → label) that occurs first in `answer` as a whole word; None if none does."""
    vocab = {label.lower(): label for label in labels}
    vocab.update({s.lower(): t for s, t in (synonyms or {}).items()})
    best: tuple[int, int, str] | None = None
    lowered = answer.lower()
    for word, label in vocab.items():
        m = re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", lowered)
        if m and (best is None or (m.start(), -len(word)) < best[:2]):
            best = (m.start(), -len(word), label)
    return best[2] if best else None
