"""The per-sample explorer of one task in one run: media, subtitle, the full-input reasoning with recovered and
hallucinated cues marked, the reference cues (recovered or missed), and every variant's and probe's answer."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from mepbench.report.highlight import Segment, highlight
from mepbench.report.media import file_uri
from mepbench.report.runs import RunData
from mepbench.report.sample_data import TaskSamples

HIDDEN_SCORES = {"pred_cues", "answer", "extraction_error", "recall", "precision"}
VERDICTS = {True: ("ok", "✓"), False: ("bad", "✗"), None: ("na", "—")}


@dataclass(frozen=True)
class Chip:
    """One cue phrase with its modality, verdict (recovered / missed / hallucinated / cue) and its best match."""

    text: str
    modality: str
    kind: str
    detail: str = ""


@dataclass(frozen=True)
class CellRow:
    """One model call of the sample: a variant of the main question, or a probe / control question."""

    variant: str
    item: str
    mask_mode: str
    answer: str
    correct: bool | None
    response: str
    truncated: int
    error: str | None
    scores: str
    cue: str = ""

    @property
    def verdict(self) -> tuple[str, str]:
        """CSS class and symbol of `correct`."""
        return VERDICTS[self.correct]


@dataclass(frozen=True)
class ProbePair:
    """A yes/no question about one cue. About a reference cue: asked with its modality masked (expect "no") and with
    every modality present (the control, expect "yes"). About an absent cue: with every modality present only (the
    negative, expect "no")."""

    modality: str
    cue: str
    masked: CellRow | None
    control: CellRow | None
    negative: CellRow | None = None

    @property
    def present(self) -> bool:
        """Whether the cue is one the clip shows (an absent cue has only the negative)."""
        return self.negative is None

    @property
    def full(self) -> CellRow | None:
        """The question asked with every modality present: the control, or the negative."""
        return self.control if self.present else self.negative


@dataclass
class SampleView:
    """Everything the explorer shows for one sample."""

    id: str
    label: str
    answer: str
    correct: bool | None
    reasoning: list[Segment]
    rows: list[CellRow]
    probes: list[ProbePair]
    subtitle: str = ""
    thumb: str | None = None
    video: str | None = None
    audio: str | None = None
    reference: list[Chip] = field(default_factory=list)
    predicted: list[Chip] = field(default_factory=list)
    recall: str = ""
    error: str | None = None


def _loads(text: Any) -> Any:
    return json.loads(text) if isinstance(text, str) and text else None


def prompt_media(prompt: Any) -> dict[str, str]:
    """Paths of the non-blank media parts of a recorded prompt, by part type."""
    out = {}
    for message in _loads(prompt) or []:
        for part in message.get("content", []):
            if part.get("type") != "text" and part.get("path") and not part.get("blank"):
                out.setdefault(part["type"], part["path"])
    return out


def _media(full: dict[str, Any], sample: Any) -> dict[str, str]:
    media = prompt_media(full.get("prompt"))
    for kind in ("video", "audio"):
        if kind not in media and sample is not None and getattr(sample, kind):
            media[kind] = getattr(sample, kind)
    return media


def sample_videos(run: RunData, task: str, data: TaskSamples) -> list[str]:
    """Every video path the explorer of `task` would show (for thumbnailing up front)."""
    rows = run.main_rows(task)
    out = []
    for sample_id, prompt in zip(rows["sample_id"], rows["prompt"]):
        video = prompt_media(prompt).get("video") or getattr(data.samples.get(sample_id), "video", None)
        if video:
            out.append(video)
    return out


def _answer(row: dict[str, Any], scores: dict[str, Any]) -> str:
    for value in (row.get("pred"), scores.get("answer"), scores.get("openset"), scores.get("sentiment")):
        if isinstance(value, str) and value:
            return value
    return ""


def _cell_row(row: dict[str, Any], limit: int | None) -> CellRow:
    scores = _loads(row.get("scores")) or {}
    target = _loads(row.get("target")) or {}
    text = row.get("response") if isinstance(row.get("response"), str) else ""
    cut = len(text) - limit if limit is not None and len(text) > limit else 0
    shown = {k: v for k, v in scores.items() if k not in HIDDEN_SCORES and v is not None}
    correct = row.get("correct")
    return CellRow(row["variant"], row["item"] or "", row.get("mask_mode") or "", _answer(row, scores),
                   None if correct is None else bool(correct), text[:len(text) - cut], cut,
                   row.get("error"), json.dumps(shown, ensure_ascii=False, default=str) if shown else "",
                   str(target.get("cue", "")))


def _probe_pairs(rows: list[CellRow]) -> list[ProbePair]:
    """Pair `probe:<modality>:<k>` with `control:<modality>:<k>` items; each `negative:<modality>:<k>` stands alone."""
    pairs: dict[tuple[bool, str], dict[str, CellRow]] = {}
    for row in rows:
        kind, _, key = row.item.partition(":")
        pairs.setdefault((kind == "negative", key), {})[kind] = row
    return [ProbePair(key.partition(":")[0], next(iter(p.values())).cue, p.get("probe"), p.get("control"),
                      p.get("negative")) for (_, key), p in pairs.items()]


def _detail(match: Any) -> str:
    return "" if match.best is None else f"best match: {match.best} ({match.similarity:.2f})"


def _chips(record: Any, scores: dict[str, Any]) -> tuple[list[Chip], list[Chip]]:
    """Reference and predicted cue chips from the utilization record; without one, the predicted cues unchecked."""
    if record is None:
        predicted = [Chip(c, m, "cue") for m, cues in (scores.get("pred_cues") or {}).items() for c in cues]
        return [], predicted
    reference = [Chip(m.cue, mod, "recovered" if m.matched else "missed", _detail(m))
                 for mod, matches in record.reference.items() for m in matches]
    predicted = [Chip(m.cue, mod, "recovered" if m.matched else "hallucinated", _detail(m))
                 for mod, matches in record.predicted.items() for m in matches]
    return reference, predicted


def _recall_text(scores: dict[str, Any]) -> str:
    recall = scores.get("recall") or {}
    return " · ".join(f"{m} {'—' if v is None else f'{100 * v:.0f}'}" for m, v in recall.items())


def _view(sample_id: str, rows: list[dict[str, Any]], data: TaskSamples, thumbs: dict[str, str],
          limit: int | None) -> SampleView:
    sample = data.samples.get(sample_id)
    main_rows = [r for r in rows if not r["item"]]
    full = next((r for r in main_rows if r["variant"] == "full"), (main_rows or rows)[0])
    main = [_cell_row(r, None if r is full else limit) for r in main_rows]
    head = next((c for c, r in zip(main, main_rows) if r is full), None) or _cell_row(full, None)
    scores = _loads(full.get("scores")) or {}
    reference, predicted = _chips(data.matches.get(sample_id), scores)
    media = _media(full, sample)
    label = _loads(full.get("label"))
    return SampleView(
        sample_id, "" if label is None else str(label), head.answer, head.correct,
        highlight(full.get("response") if isinstance(full.get("response"), str) else "",
                  {c.text: c.kind for c in predicted}),
        main, _probe_pairs([_cell_row(r, limit) for r in rows if r["item"]]),
        subtitle=(sample.subtitle or "") if sample else "", thumb=thumbs.get(media.get("video", "")),
        video=file_uri(media.get("video")), audio=file_uri(media.get("audio")),
        reference=reference, predicted=predicted, recall=_recall_text(scores), error=full.get("error"))


def sample_views(run: RunData, task: str, data: TaskSamples, thumbs: dict[str, str],
                 response_chars: int | None = 400) -> list[SampleView]:
    """One view per sample of `task`, in run order; responses other than the full-input reasoning are cut
    at `response_chars` (None keeps them whole)."""
    frame = run.samples[run.samples["task"] == task]
    columns = list(frame.columns)
    grouped: dict[str, list[dict[str, Any]]] = {}
    for values in zip(*(frame[c].tolist() for c in columns)):
        row = {c: None if isinstance(v, float) and math.isnan(v) else v for c, v in zip(columns, values)}
        grouped.setdefault(row["sample_id"], []).append(row)
    return [_view(sid, rows, data, thumbs, response_chars) for sid, rows in grouped.items()]
