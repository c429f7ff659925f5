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


def run_posters(run: RunData) -> list[str]:
    """Every poster frame the run recorded (names inside its directory)."""
    return [p for p in run.samples["poster"] if isinstance(p, str)]


def _label(row: dict[str, Any]) -> str:
    for key in ("label", "label_value"):
        if row.get(key) is not None:
            return str(row[key])
    return ""


def _answer(row: dict[str, Any], scores: dict[str, Any]) -> str:
    for value in (row.get("pred"), scores.get("answer"), scores.get("openset"), scores.get("sentiment")):
        if isinstance(value, str) and value:
            return value
    return ""


def _cell_row(row: dict[str, Any], limit: int | None) -> CellRow:
    scores = row.get("scores") or {}
    target = row.get("target") or {}
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


def _detail(match: dict[str, Any]) -> str:
    return "" if match.get("best") is None else f"best match: {match['best']} ({match['similarity']:.2f})"


def _chips(matches: list[dict[str, Any]], scores: dict[str, Any]) -> tuple[list[Chip], list[Chip]]:
    """Reference and predicted cue chips from the cue matches the run recorded; without any, the predicted cues
    unchecked."""
    if not matches:
        predicted = [Chip(c, m, "cue") for m, cues in (scores.get("pred_cues") or {}).items() for c in cues or []]
        return [], predicted
    reference = [Chip(m["cue"], m["modality"], "recovered" if m["matched"] else "missed", _detail(m))
                 for m in matches if m["side"] == "reference"]
    predicted = [Chip(m["cue"], m["modality"], "recovered" if m["matched"] else "hallucinated", _detail(m))
                 for m in matches if m["side"] == "predicted"]
    return reference, predicted


def _recall_text(scores: dict[str, Any]) -> str:
    recall = scores.get("recall") or {}
    return " · ".join(f"{m} {'—' if v is None else f'{100 * v:.0f}'}" for m, v in recall.items())


def _view(rows: list[dict[str, Any]], thumbs: dict[str, str], limit: int | None) -> SampleView:
    main_rows = [r for r in rows if not r["item"]]
    full = next((r for r in main_rows if r["variant"] == "full"), (main_rows or rows)[0])
    main = [_cell_row(r, None if r is full else limit) for r in main_rows]
    head = next((c for c, r in zip(main, main_rows) if r is full), None) or _cell_row(full, None)
    scores = full.get("scores") or {}
    reference, predicted = _chips(full.get("cue_matches") or [], scores)
    media = full.get("media") or {}
    return SampleView(
        full["sample_id"], _label(full), head.answer, head.correct,
        highlight(full.get("response") if isinstance(full.get("response"), str) else "",
                  {c.text: c.kind for c in predicted}),
        main, _probe_pairs([_cell_row(r, limit) for r in rows if r["item"]]),
        subtitle=full.get("subtitle") or "", thumb=thumbs.get(full.get("poster") or ""),
        video=file_uri(media.get("video")), audio=file_uri(media.get("audio")),
        reference=reference, predicted=predicted, recall=_recall_text(scores), error=full.get("error"))


def sample_views(run: RunData, task: str, thumbs: dict[str, str], response_chars: int | None = 400
                 ) -> list[SampleView]:
    """One view per sample of `task`, in run order, from the run's samples table alone; responses other than the
    full-input reasoning are cut at `response_chars` (None keeps them whole)."""
    frame = run.samples[run.samples["task"] == task]
    columns = list(frame.columns)
    grouped: dict[str, list[dict[str, Any]]] = {}
    for values in zip(*(frame[c].tolist() for c in columns)):
        row = {c: None if isinstance(v, float) and math.isnan(v) else v for c, v in zip(columns, values)}
        grouped.setdefault(row["sample_id"], []).append(row)
    return [_view(rows, thumbs, response_chars) for rows in grouped.values()]
