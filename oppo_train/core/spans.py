"""Exact clause → token mapping: character offsets of sampled tokens in their decoded text, and per-token routing.

The authors' code allocates completion tokens to clauses proportionally to clause token counts (paper notes §4.2);
here each sampled token gets its exact [start, end) span in the decoded completion, and takes the modality of the
routed clause it overlaps most.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import torch

Span = tuple[int, int]


class SpanLike(Protocol):
    """A character span with a routing label (e.g. `mepbench.scoring.RoutedClause`)."""

    start: int
    end: int
    modality: str | None


def _common_prefix(a: str, b: str) -> int:
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _decode_prefixes(tokenizer: Any, ids: list[int]) -> list[str]:
    """decode(ids[:k+1], skip_special_tokens=True) for every k; through the Rust tokenizer when the wrapper does not
    post-process the text (the transformers wrapper costs more than the decoding itself)."""
    prefixes = [ids[:k + 1] for k in range(len(ids))]
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and not getattr(tokenizer, "clean_up_tokenization_spaces", False):
        return backend.decode_batch(prefixes, skip_special_tokens=True)
    return tokenizer.batch_decode(prefixes, skip_special_tokens=True)


def token_char_spans(tokenizer: Any, ids: Sequence[int], text: str | None = None) -> list[Span]:
    """[start, end) of each token of `ids` in `text` = decode(ids, skip_special_tokens=True).

    Uses the tokenizer's offset mapping when re-encoding the text gives back exactly these ids; otherwise (a sampled,
    non-canonical tokenisation) decodes every prefix. Special tokens, and byte pieces of a character that a later token
    completes, get empty spans.
    """
    ids = [int(i) for i in ids]
    if text is None:
        text = tokenizer.decode(ids, skip_special_tokens=True)
    special = set(getattr(tokenizer, "all_special_ids", ()))
    content = [i for i in ids if i not in special]
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    if list(encoded["input_ids"]) == content:
        offsets = iter(encoded["offset_mapping"])
        spans, pos = [], 0
        for i in ids:
            if i in special:
                spans.append((pos, pos))
            else:
                start, end = next(offsets)
                spans.append((start, end))
                pos = end
        return spans
    prefixes = _decode_prefixes(tokenizer, ids)
    spans, prev = [], 0
    for prefix in prefixes:
        end = max(prev, _common_prefix(prefix, text))
        spans.append((prev, end))
        prev = end
    return spans


def token_labels(spans: Sequence[Span], clauses: Sequence[SpanLike]) -> list[str | None]:
    """Per token, the modality of the clause its span overlaps most (first on ties); None outside routed clauses."""
    labels: list[str | None] = []
    for start, end in spans:
        best, best_overlap = None, 0
        for clause in clauses:
            overlap = min(end, clause.end) - max(start, clause.start)
            if overlap > best_overlap:
                best, best_overlap = clause.modality, overlap
        labels.append(best)
    return labels


def label_masks(labels: Sequence[Sequence[str | None]], length: int,
                modalities: Sequence[str] = ("video", "audio")) -> dict[str, torch.Tensor]:
    """(B, length) bool masks T_m, one per modality, from per-sequence token labels (shorter rows padded False)."""
    masks = {m: torch.zeros(len(labels), length, dtype=torch.bool) for m in modalities}
    for row, seq in enumerate(labels):
        for col, label in enumerate(seq[:length]):
            if label in masks:
                masks[label][row, col] = True
    return masks


def route_tokens(tokenizer: Any, completion_ids: Sequence[Sequence[int]], texts: Sequence[str],
                 clauses: Sequence[Sequence[SpanLike]], length: int,
                 modalities: Sequence[str] = ("video", "audio")) -> dict[str, torch.Tensor]:
    """T_V / T_A masks for a batch: each completion's tokens labelled by its routed clauses (paper §4.1); completions
    without a routed clause skip the offset computation."""
    labels = [token_labels(token_char_spans(tokenizer, ids, text), cl) if any(c.modality for c in cl) else []
              for ids, text, cl in zip(completion_ids, texts, clauses)]
    return label_masks(labels, length, modalities)

