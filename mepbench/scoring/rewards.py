"""The answer rewards of the trainer, as plain callables `f(prompts, completions, **columns) -> list[float | None]`
(TRL's reward signature; dataset columns arrive as keyword lists, one value per completion; None means "no reward
defined for this sample"): R_fmt (format) and R_acc (emotion-wheel or word set-F1). The cue rewards are R_omni
(`mepbench.scoring.recovery.omni_perception`), served batch-wise by the trainer's `CueScorer`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mepbench.scoring.answer import parse_answer
from mepbench.scoring.mer_metrics import parse_openset
from mepbench.scoring.wheel import load_wheels

RewardFn = Callable[..., list[float | None]]
Completion = str | Sequence[Mapping[str, Any]]


def completion_text(completion: Completion) -> str:
    """The text of a completion: the string itself, or its assistant messages' text parts (messages joined by
    newlines)."""
    if isinstance(completion, str):
        return completion
    messages = [m for m in completion if m.get("role", "assistant") == "assistant"]
    texts = []
    for message in messages:
        content = message.get("content") or ""
        if not isinstance(content, str):
            content = "".join(p.get("text", "") for p in content if p.get("type", "text") == "text")
        texts.append(content)
    return "\n".join(texts)


def format_reward(prompts: Sequence[Any], completions: Sequence[Completion], **columns: Any) -> list[float | None]:
    """1.0 when the completion is exactly `<think>…</think><answer>…</answer>`, else 0.0 (paper §3.2 R_fmt)."""
    return [1.0 if parse_answer(completion_text(c)).format_ok else 0.0 for c in completions]


def set_f1(predicted: set[str], gold: set[str]) -> float:
    """2|P ∩ G| / (|P| + |G|); 0 when either set is empty."""
    if not predicted or not gold:
        return 0.0
    return 2.0 * len(predicted & gold) / (len(predicted) + len(gold))


def answer_words(completion: Completion) -> list[str]:
    """The lower-cased words of the completion's `<answer>` (none without the tag)."""
    parsed = parse_answer(completion_text(completion))
    return parsed.words if parsed.has_answer_tag else []


def gold_words(label: Any) -> list[str]:
    """A gold label (a word, a list string "[a, b]" or a list) as lower-cased words."""
    return parse_openset(label) if label is not None else []


def make_accuracy_reward(wheel_dir: str | Path | None = None,
                         synonyms: Mapping[str, str] | None = None) -> RewardFn:
    """R_acc: with `wheel_dir`, the mean over the 5 wheels (those where the gold maps to a sector) of the set-F1 of
    the wheel-mapped answer and gold words (AffectGPT-R1's EW reward, §3.2); otherwise, or when the gold maps to no
    sector, the set-F1 of the words themselves after `synonyms`. None without a gold label (column `label`)."""
    wheels = load_wheels(wheel_dir) if wheel_dir is not None else None
    table = {k.lower(): v.lower() for k, v in (synonyms or {}).items()}

    def accuracy(prompts: Sequence[Any], completions: Sequence[Any], label: Sequence[Any],
                 **columns: Any) -> list[float | None]:
        out: list[float | None] = []
        for completion, gold_label in zip(completions, label):
            gold = gold_words(gold_label)
            if not gold:
                out.append(None)
                continue
            pred = answer_words(completion)
            if wheels is not None:
                mapped_gold, mapped_pred = wheels.map_all(gold), wheels.map_all(pred)
                scores = [set_f1(set(p), set(g)) for p, g in zip(mapped_pred, mapped_gold) if g]
                if scores:
                    out.append(sum(scores) / len(scores))
                    continue
            out.append(set_f1({table.get(w, w) for w in pred}, {table.get(w, w) for w in gold}))
        return out

    return accuracy
