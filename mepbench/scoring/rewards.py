"""TRL-style reward adapters over the shared scorers: `f(prompts, completions, **columns) -> list[float | None]`.

Completions are strings or chat-message lists (`[{"role": "assistant", "content": ...}]`); dataset columns
arrive as keyword lists, one value per completion. None means "no reward defined for this sample".
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from mepbench.scoring.answer import match_label, parse_answer
from mepbench.scoring.cues import Cues
from mepbench.scoring.embedding import Embedder, default_embedder
from mepbench.scoring.recovery import DEFAULT_DELTA, REWARD_CATEGORIES, omni_perception

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


def _label_set(labels: Any, i: int) -> list[str] | None:
    if labels is None:
        return None
    if labels and isinstance(labels[0], str):
        return list(labels)
    return list(labels[i]) if labels[i] else None


def accuracy_reward(prompts: Sequence[Any], completions: Sequence[Completion], label: Sequence[Any],
                    labels: Sequence[Any] | None = None, synonyms: Mapping[str, str] | None = None,
                    **columns: Any) -> list[float | None]:
    """1.0 when the label `match_label` reads from the `<answer>` is the gold `label` (a string or a list of
    accepted ones), else 0.0; None without a gold label.

    `labels` is the label set (one list for all samples, or one per sample): the first label mentioned is the
    prediction. Without it the vocabulary is the gold label alone, so the reward checks that the gold label is
    mentioned as a whole word.
    """
    rewards: list[float | None] = []
    for i, completion in enumerate(completions):
        gold = label[i]
        if gold is None or gold == [] or gold == "":
            rewards.append(None)
            continue
        accepted = [gold] if isinstance(gold, str) else list(gold)
        vocab = _label_set(labels, i) or accepted
        predicted = match_label(parse_answer(completion_text(completion)).answer, vocab, synonyms)
        hit = predicted is not None and predicted.lower() in {a.lower() for a in accepted}
        rewards.append(1.0 if hit else 0.0)
    return rewards


def cue_recovery_reward(prompts: Sequence[Any], completions: Sequence[Completion],
                        cues: Sequence[Cues | Mapping[str, Sequence[str]] | None], *, embedder: Embedder | None = None,
                        delta: float = DEFAULT_DELTA, categories: Sequence[str] = REWARD_CATEGORIES,
                        **columns: Any) -> list[float | None]:
    """R_omni (paper §3): mean over cue categories of mean s(c) against the completion's clauses; None where the
    sample has no reference cues. Without `embedder` the process-wide default embedder is used."""
    scorer = embedder or default_embedder()
    results = omni_perception([completion_text(c) for c in completions], [c or {} for c in cues], scorer,
                              delta=delta, categories=categories)
    return [r.reward for r in results]


def make_cue_recovery_reward(embedder: Embedder | None = None, delta: float = DEFAULT_DELTA,
                             categories: Sequence[str] = REWARD_CATEGORIES) -> RewardFn:
    """`cue_recovery_reward` with its embedder and δ bound, named for TRL's reward logging."""
    bound = functools.partial(cue_recovery_reward, embedder=embedder, delta=delta, categories=categories)
    return functools.update_wrapper(bound, cue_recovery_reward)
