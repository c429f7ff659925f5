"""Split a model's reasoning into plain and highlighted segments, so templates can mark cue phrases while
autoescape still treats every character of the model's text as text."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Segment:
    """A run of text; `kind` names its highlight ("recovered", "hallucinated", ...) or is None."""

    text: str
    kind: str | None = None


def _spans(folded: str, wanted: dict[str, str]) -> list[tuple[int, int, str]]:
    """Non-overlapping (start, end, kind) matches, longest phrase first, then left to right."""
    taken = bytearray(len(folded))
    spans = []
    for phrase in sorted(wanted, key=len, reverse=True):
        start = folded.find(phrase)
        while start != -1:
            end = start + len(phrase)
            if taken.find(1, start, end) == -1:
                taken[start:end] = b"\x01" * (end - start)
                spans.append((start, end, wanted[phrase]))
            start = folded.find(phrase, end)
    return sorted(spans)


def highlight(text: str, phrases: dict[str, str]) -> list[Segment]:
    """Mark every case-insensitive occurrence of each phrase with its kind; longer phrases win overlaps."""
    wanted = {p.strip().lower(): k for p, k in phrases.items() if p.strip()}
    folded = text.lower()
    if not text or not wanted or len(folded) != len(text):
        return [Segment(text)] if text else []
    out: list[Segment] = []
    last = 0
    for start, end, kind in _spans(folded, wanted):
        if start > last:
            out.append(Segment(text[last:start]))
        out.append(Segment(text[start:end], kind))
        last = end
    if last < len(text):
        out.append(Segment(text[last:]))
    return out
