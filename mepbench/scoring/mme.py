"""MME-Emotion scoring (benchmarks.md §4.2): step parsing, `<score>` parsing, Rec / Rea / CoT per sample,
the C/K rule of FG-ER and ML-ER with a precision-aware companion, and the pooled overall.

Two modes. `strict` (default): a sample whose judging failed at any stage is scored 0 and counted, so
the denominator is always every sample. `upstream`: the published parser and drop rule
(`eval_cot/*/metrics/cal_metrics.py`), which skips unparsed samples; for leaderboard parity only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping, Sequence

MODES = ("strict", "upstream")
ALPHA = 0.5
PUBLISHED_JUDGES = {"step": "gpt-4.1-2025-04-14", "score": "gpt-4o-2024-11-20"}
TASK_ORDER = ("ER-Lab", "ER-Wild", "Noise-ER", "FG-ER", "ML-ER", "SA", "FG-SA", "IR")


@dataclass(frozen=True)
class MMERule:
    """What one MME-Emotion task predicts and how its last step is rated (benchmarks.md §4.1–4.2)."""

    name: str
    size: int
    target: str
    label_sep: str | None = None
    fine_sentiment: bool = False

    @property
    def multi_label(self) -> bool:
        """Whether the last step is rated C/K (FG-ER, ML-ER)."""
        return self.label_sep is not None

    def gold(self, label: str) -> list[str]:
        """The ground-truth labels of a sample (FG-ER joins them with ';', ML-ER with ',')."""
        if self.label_sep is None:
            return [label.strip()]
        return [x.strip() for x in label.split(self.label_sep) if x.strip()]


RULES: dict[str, MMERule] = {r.name: r for r in (
    MMERule("ER-Lab", 500, "emotion"), MMERule("ER-Wild", 1800, "emotion"), MMERule("Noise-ER", 500, "emotion"),
    MMERule("FG-ER", 500, "emotion", label_sep=";"), MMERule("ML-ER", 600, "emotion", label_sep=","),
    MMERule("SA", 1600, "sentiment"), MMERule("FG-SA", 500, "sentiment", fine_sentiment=True),
    MMERule("IR", 500, "intent"))}

_STEP_BLOCK = re.compile(r"<step>(.*?)</step>", re.S | re.I)
_STEP_MARK = re.compile(r"\bstep\s*(\d+)\s*[:：]", re.I)
_SCORE_BLOCK = re.compile(r"<score>(.*?)</score>", re.S | re.I)
_RATING = re.compile(r"step\s*(\d+)\s*[:：]\s*(\d+)\s*/\s*(\d+)", re.I)
_STEP_WORD = re.compile(r"step\s*\d+", re.I)
_UPSTREAM_BLOCK = re.compile(r"<score>(.*?)</score>")
_UPSTREAM_SINGLE = re.compile(r": (\d)/1")
_UPSTREAM_FRACTION = re.compile(r":\s*(\d+)/(\d+)")


def parse_steps(text: str) -> list[str] | None:
    """The "Step k:" items of a step-extractor answer (inside its last `<step>` block if any), numbered 1..N;
    a mention of an earlier step inside a step is text, a skipped number makes the answer unparsed (None)
    (stage 1, `extract_step/*/code/extract_step.py`)."""
    blocks = _STEP_BLOCK.findall(text or "")
    body = blocks[-1] if blocks else (text or "")
    marks: list[re.Match[str]] = []
    for mark in _STEP_MARK.finditer(body):
        number = int(mark.group(1))
        if number == len(marks) + 1:
            marks.append(mark)
        elif number > len(marks) + 1:
            return None
    if not marks:
        return None
    ends = [m.start() for m in marks[1:]] + [len(body)]
    return [body[m.end():end].strip() for m, end in zip(marks, ends)]


def format_steps(steps: Sequence[str]) -> str:
    """Steps as the judge sees them: one "Step k: ..." line each."""
    return "\n".join(f"Step {i}: {s}" for i, s in enumerate(steps, 1))


@dataclass(frozen=True)
class ScoreParse:
    """Ratings of one judge answer as fractions, or the failure reason (`score_missing`,
    `score_malformed`, `count_mismatch`)."""

    ratings: tuple[float, ...] | None
    reason: str | None = None
    correct_labels: int | None = None


def parse_score(text: str, n_steps: int, k: int | None = None) -> ScoreParse:
    """Strict parse of the last `<score>` block: steps numbered 1..n_steps, every rating `0/1` or `1/1`,
    except a C/K last step (`k` given) which must read `C/k` with 0 ≤ C ≤ k (judge rules 1–5, §4.2)."""
    blocks = _SCORE_BLOCK.findall(text or "")
    if not blocks:
        return ScoreParse(None, "score_missing")
    body = blocks[-1]
    found = [(int(s), int(n), int(d)) for s, n, d in _RATING.findall(body)]
    if not found or len(_STEP_WORD.findall(body)) != len(found):
        return ScoreParse(None, "score_malformed")
    if [s for s, _, _ in found] != list(range(1, len(found) + 1)):
        return ScoreParse(None, "score_malformed")
    if len(found) != n_steps:
        return ScoreParse(None, "count_mismatch")
    *head, (_, num, den) = found
    if any(d != 1 or n not in (0, 1) for _, n, d in head):
        return ScoreParse(None, "score_malformed")
    if k is None and (den != 1 or num not in (0, 1)):
        return ScoreParse(None, "score_malformed")
    if k is not None and (den != k or not 0 <= num <= k):
        return ScoreParse(None, "score_malformed")
    return ScoreParse(tuple(float(n) / d for _, n, d in found), correct_labels=num if k is not None else None)


def parse_score_upstream(text: str, multi_label: bool) -> list[float] | None:
    """The published parser: first `<score>` block on one line only (no DOTALL); single-label tasks read
    `: d/1` digits, FG-ER / ML-ER any `n/m` (m = 0 → 0); None or [] means the sample is dropped."""
    match = _UPSTREAM_BLOCK.search(text or "")
    if match is None:
        return None
    if not multi_label:
        return [float(d) for d in _UPSTREAM_SINGLE.findall(match.group(1))]
    return [int(n) / int(d) if int(d) else 0.0 for n, d in _UPSTREAM_FRACTION.findall(match.group(1))]


def rec_rea(ratings: Sequence[float]) -> tuple[float, float]:
    """Rec = the last step's rating; Rea = mean of the earlier ones, 0 for a one-step answer (§4.2)."""
    if not ratings:
        return 0.0, 0.0
    head = ratings[:-1]
    return float(ratings[-1]), float(sum(head) / len(head)) if head else 0.0


def cot(rec: float, rea: float, alpha: float = ALPHA) -> float:
    """CoT = α·Rec + (1 − α)·Rea, α = 0.5 as published."""
    return alpha * rec + (1 - alpha) * rea


def _label_pattern(label: str) -> re.Pattern[str]:
    names = [re.escape(x.strip()) for x in label.split("/") if x.strip()]
    return re.compile(r"(?<![\w-])(?:" + "|".join(names) + r")(?![\w-])", re.I)


def predicted_labels(final_step: str, label_set: Sequence[str]) -> list[str]:
    """Labels of the set named in the final step, in label-set order (word match, case-insensitive, `A/B`
    labels match either name; longer labels first so "strong positive" does not also count "positive")."""
    text, found = final_step or "", set()
    for label in sorted(label_set, key=len, reverse=True):
        pattern = _label_pattern(label)
        if pattern.search(text):
            found.add(label)
            text = pattern.sub(" ", text)
    return [label for label in label_set if label in found]


def multilabel_precision(correct: int, k: int, n_predicted: int) -> tuple[float, float]:
    """Precision-aware companion of C/K: precision = C / |predicted| (|predicted| counted from the label
    set, at least C), and F1 of that precision with the recall C/K. Over-prediction lowers both."""
    n = max(n_predicted, correct)
    precision = correct / n if n else 0.0
    recall = correct / k if k else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, f1


def overall_from_tasks(per_task: Mapping[str, Mapping[str, float]], sizes: Mapping[str, int] | None = None,
                       alpha: float = ALPHA) -> dict[str, float]:
    """The published overall row from per-task Rec-S / Rea-S: the sample-weighted (micro) mean over
    tasks, as `eval_cot/Overall/metrics/cal_metrics.py` pools all eight eval files; `n` overrides the
    task size where a task scored a different number of samples."""
    weights = {t: float(v.get("n") or (sizes or {}).get(t) or RULES[t].size) for t, v in per_task.items()}
    total = sum(weights.values())
    rec = sum(weights[t] * v["Rec-S"] for t, v in per_task.items()) / total
    rea = sum(weights[t] * v["Rea-S"] for t, v in per_task.items()) / total
    return {"Rec-S": rec, "Rea-S": rea, "CoT-S": cot(rec, rea, alpha), "n": total}


def normalise_model_id(name: str) -> str:
    """A judge id without provider prefix or case (`openai/GPT-4o-2024-11-20` → `gpt-4o-2024-11-20`)."""
    return name.strip().lower().rsplit("/", 1)[-1]


def judge_comparability(identities: Mapping[str, str], mode: str, failures: int) -> dict[str, object]:
    """Whether a result can stand beside the published leaderboard: the pinned published judges
    (GPT-4.1 step, GPT-4o score), and either the upstream mode or no failure to score differently."""
    judges = [f"{role} judge {identities.get(role, '<none>')!r} is not the published {pinned!r}"
              for role, pinned in PUBLISHED_JUDGES.items()
              if normalise_model_id(identities.get(role, "")) != pinned]
    scoring = ([f"strict mode scores {failures} failed sample(s) 0; upstream dropped them"]
               if mode == "strict" and failures else [])
    return {"judges": dict(identities), "published_judges": dict(PUBLISHED_JUDGES),
            "judges_match_published": not judges, "comparable": not judges and not scoring,
            "notes": [*judges, *scoring, "the prompt to the evaluated model is ours (upstream never published it)"]}
