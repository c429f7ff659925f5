"""The Omni-Perception Reward (paper §3) and the clause→modality routing of the Omni-Perception Loss (§4.2).

The completion's reasoning is split into clauses; every reference cue c is scored by how well some clause
recovers it, s(c) = ReLU(max_k cos(c, clause_k) − δ) / (1 − δ); per-category means are averaged into the
reward. The same similarities route each clause to the visual or the acoustic modality (or to none), with
character spans the trainer maps to tokens.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from mepbench.scoring.cues import Cues, canonical_key
from mepbench.scoring.embedding import Embedder, cosine_matrix

# δ: 0.5 as stated in the paper (the authors' final training script uses 0.45) — oppo-paper.md §3.2, §5, §9.1.
DEFAULT_DELTA = 0.5
# R_omni averages the visual, acoustic and emotion categories that have cues (paper §3.1; the authors' code keeps
# the emotion part as a separate reward, §3.2). Text cues are not part of the reward.
REWARD_CATEGORIES = ("video", "audio", "emotion")
# Only visual and acoustic clauses are routed for the loss; emotion cues are not (§4.2).
ROUTED_MODALITIES = ("video", "audio")
# Clause rule: the authors split the reasoning at runs of sentence/clause punctuation (. ! ? , and the CJK forms)
# and newlines (§3.2). We also split at ';' and before these conjunctions, so "a smile and a trembling voice"
# becomes two clauses that can route to different modalities; pass conjunctions=() for the punctuation-only rule.
CONJUNCTIONS = ("and", "but", "while", "whereas", "although", "though", "because", "yet", "however")
_PUNCT = r"(?<!\d)\.|\.(?!\d)|[!?;,\n。！？，；]"
_STRIP = " \t\r\"'“”‘’()[]"

_THINK_OPEN = re.compile(r"<think>", re.I)
_THINK_END = re.compile(r"</think>|<answer>", re.I)
_ANSWER_OPEN = re.compile(r"<answer>", re.I)


@dataclass(frozen=True)
class Clause:
    """A clause of a completion: its text and [start, end) character offsets into the completion."""

    text: str
    start: int
    end: int


@dataclass(frozen=True)
class RoutedClause:
    """A clause, the modality its tokens are routed to (None: no KL on them), and its best cosine per modality."""

    text: str
    start: int
    end: int
    modality: str | None
    scores: dict[str, float]


@dataclass(frozen=True)
class OmniPerception:
    """One completion's reward (None without reference cues), per-category means S_m, per-cue s(c), routed clauses."""

    reward: float | None
    per_category: dict[str, float]
    cue_scores: dict[str, list[float]]
    clauses: list[RoutedClause]


def think_span(completion: str) -> tuple[int, int]:
    """Offsets of the reasoning: inside `<think>` (to `</think>`, `<answer>` or the end); without a `<think>` tag,
    everything before `<answer>`."""
    opened = _THINK_OPEN.search(completion)
    if opened:
        closed = _THINK_END.search(completion, opened.end())
        return opened.end(), closed.start() if closed else len(completion)
    answer = _ANSWER_OPEN.search(completion)
    return 0, answer.start() if answer else len(completion)


def split_clauses(text: str, conjunctions: Sequence[str] = CONJUNCTIONS, offset: int = 0) -> list[Clause]:
    """Clauses of `text` with offsets (+`offset`): cut at . ! ? ; , newlines (not decimal points) and before each
    conjunction word; separators and conjunctions belong to no clause; pieces without a word character are dropped."""
    pattern = _PUNCT + (r"|\b(?:" + "|".join(map(re.escape, conjunctions)) + r")\b" if conjunctions else "")
    clauses, pos = [], 0
    for cut in [*re.finditer(pattern, text, re.I), None]:
        end = cut.start() if cut else len(text)
        piece = text[pos:end]
        stripped = piece.strip(_STRIP)
        if re.search(r"\w", stripped):
            start = pos + piece.index(stripped)
            clauses.append(Clause(stripped, offset + start, offset + start + len(stripped)))
        pos = cut.end() if cut else len(text)
    return clauses


def completion_clauses(completion: str, conjunctions: Sequence[str] = CONJUNCTIONS) -> list[Clause]:
    """The clauses of a completion's reasoning, offsets into the whole completion."""
    start, end = think_span(completion)
    return split_clauses(completion[start:end], conjunctions, offset=start)


def _cue_dict(cues: Cues | Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    items = cues.to_dict() if isinstance(cues, Cues) else cues
    merged: dict[str, list[str]] = {}
    for key, values in items.items():
        values = [values] if isinstance(values, str) else values
        merged.setdefault(canonical_key(key), []).extend(v.strip() for v in values or [] if v and v.strip())
    return {k: list(dict.fromkeys(v)) for k, v in merged.items()}


def hit_scores(similarity: np.ndarray, delta: float) -> np.ndarray:
    """s(c) = ReLU(max_k M[c, k] − δ) / (1 − δ) for each row c of a cue×clause cosine matrix (paper §3.1); 0 for
    every cue when there are no clauses."""
    if similarity.shape[1] == 0:
        return np.zeros(similarity.shape[0])
    return np.clip((similarity.max(axis=1) - delta) / (1.0 - delta), 0.0, 1.0)


def route(clause_scores: Mapping[str, float], delta: float) -> str | None:
    """The modality a clause is routed to: the best one when its cosine exceeds δ and every other's (§4.2)."""
    if not clause_scores:
        return None
    best = max(clause_scores, key=lambda m: clause_scores[m])
    others = [s for m, s in clause_scores.items() if m != best]
    top = clause_scores[best]
    return best if top > delta and all(top > s for s in others) else None


def omni_perception(completions: Sequence[str], cues: Sequence[Cues | Mapping[str, Sequence[str]]],
                    embedder: Embedder, *, delta: float = DEFAULT_DELTA,
                    categories: Sequence[str] = REWARD_CATEGORIES, routed: Sequence[str] = ROUTED_MODALITIES,
                    conjunctions: Sequence[str] = CONJUNCTIONS) -> list[OmniPerception]:
    """R_omni and the clause routing for each completion against its reference cues; all unique clause and cue
    texts of the batch are encoded in one call."""
    if len(completions) != len(cues):
        raise ValueError(f"{len(completions)} completions but {len(cues)} cue sets")
    if not 0.0 <= delta < 1.0:
        raise ValueError(f"delta must be in [0, 1), got {delta}")
    clause_lists = [completion_clauses(c, conjunctions) for c in completions]
    cue_dicts = [_cue_dict(c) for c in cues]
    texts = list(dict.fromkeys([cl.text for cls in clause_lists for cl in cls]
                               + [t for d in cue_dicts for vs in d.values() for t in vs]))
    vectors = dict(zip(texts, embedder.encode(texts))) if texts else {}
    return [_score(cls, d, vectors, delta, categories, routed) for cls, d in zip(clause_lists, cue_dicts)]


def _matrix(items: Sequence[str], vectors: Mapping[str, np.ndarray]) -> np.ndarray:
    return np.stack([vectors[t] for t in items]) if items else np.zeros((0, 1), np.float32)


def _score(clauses: list[Clause], cue_dict: dict[str, list[str]], vectors: Mapping[str, np.ndarray], delta: float,
           categories: Sequence[str], routed: Sequence[str]) -> OmniPerception:
    clause_matrix = _matrix([c.text for c in clauses], vectors)
    sims = {m: cosine_matrix(_matrix(cue_dict[m], vectors), clause_matrix)
            for m in dict.fromkeys([*categories, *routed]) if cue_dict.get(m)}
    cue_scores = {m: hit_scores(sims[m], delta).tolist() for m in categories if m in sims}
    per_category = {m: float(np.mean(s)) for m, s in cue_scores.items()}
    reward = float(np.mean(list(per_category.values()))) if per_category else None
    routed_clauses = []
    for k, clause in enumerate(clauses):
        scores = {m: float(sims[m][:, k].max()) for m in routed if m in sims}
        routed_clauses.append(RoutedClause(clause.text, clause.start, clause.end, route(scores, delta), scores))
    return OmniPerception(reward, per_category, cue_scores, routed_clauses)


def score_completion(completion: str, cues: Cues | Mapping[str, Sequence[str]], embedder: Embedder, *,
                     delta: float = DEFAULT_DELTA, categories: Sequence[str] = REWARD_CATEGORIES,
                     routed: Sequence[str] = ROUTED_MODALITIES,
                     conjunctions: Sequence[str] = CONJUNCTIONS) -> OmniPerception:
    """`omni_perception` for a single completion."""
    return omni_perception([completion], [cues], embedder, delta=delta, categories=categories, routed=routed,
                           conjunctions=conjunctions)[0]
