"""Exact clause → token mapping with the tiny-omni tokenizer, and routing of tokens by their clauses (paper §4)."""

from __future__ import annotations

import math

import pytest
from helpers import FakeEmbedder

from mepbench.models.tiny_omni import ensure_tiny_omni
from mepbench.scoring import omni_perception
from oppo_train.core import label_masks, route_tokens, token_char_spans, token_labels


@pytest.fixture(scope="module")
def tok(session_cache):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(ensure_tiny_omni(session_cache), local_files_only=True)


TEXT = "<think>The face shows a smiling mouth, and the voice trembles.</think><answer>happy</answer>"


def test_canonical_ids_use_tokenizer_offsets(tok):
    ids = tok(TEXT, add_special_tokens=False).input_ids + [tok.eos_token_id]
    spans = token_char_spans(tok, ids)
    assert "".join(TEXT[s:e] for s, e in spans) == TEXT  # contiguous, exact, nothing lost
    assert spans[-1][0] == spans[-1][1] == len(TEXT)  # the end-of-turn token has an empty span
    for (s, e), i in zip(spans[:-1], ids[:-1]):
        assert TEXT[s:e] == tok.decode([i])


def test_sampled_non_canonical_ids_by_prefix_decoding(tok):
    text = "smile, café 😀 ok"
    ids = [i for ch in text for i in tok(ch, add_special_tokens=False).input_ids]  # one piece per char or byte
    assert ids != tok(text, add_special_tokens=False).input_ids
    spans = token_char_spans(tok, ids)
    assert "".join(text[s:e] for s, e in spans) == text
    per_char = [text[s:e] for s, e in spans if e > s]
    assert per_char == list(text)  # every character owned by exactly the token that completes it
    pieces = [len(tok(ch, add_special_tokens=False).input_ids) for ch in text]
    assert max(pieces) > 1  # é and the emoji are split into byte tokens
    assert sum(1 for s, e in spans if s == e) == sum(n - 1 for n in pieces)  # leading byte pieces: empty spans


class Span:
    def __init__(self, start, end, modality):
        self.start, self.end, self.modality = start, end, modality


def test_token_labels_take_the_largest_overlap():
    spans = [(0, 3), (3, 6), (6, 10), (10, 10), (10, 14)]
    clauses = [Span(0, 5, "video"), Span(5, 12, "audio"), Span(12, 14, None)]
    # (3,6): 2 chars video vs 1 audio → video ; (10,14): 2 audio vs 2 None → first (audio); empty span → None
    assert token_labels(spans, clauses) == ["video", "video", "audio", None, "audio"]
    masks = label_masks([["video", None, "audio"], ["audio"]], 4)
    assert masks["video"].tolist() == [[True, False, False, False], [False] * 4]
    assert masks["audio"].tolist() == [[False, False, True, False], [True, False, False, False]]


TABLE = {"smiling mouth": (1, 0, 0), "trembling voice": (0, 1, 0),
         "The face shows a smiling mouth": (0.8, 0.6, 0), "the voice trembles": (0.3, 0.9, math.sqrt(0.1)),
         "it is a tie": (0.6, 0.6, math.sqrt(0.28)), "the room is dark": (0.4, 0, math.sqrt(0.84))}


def test_routed_tokens_cover_exactly_their_clauses(tok):
    text = ("<think>The face shows a smiling mouth, and the voice trembles; it is a tie, the room is dark"
            "</think><answer>happy</answer>")
    cues = {"video": ["smiling mouth"], "audio": ["trembling voice"]}
    result = omni_perception([text], [cues], FakeEmbedder(TABLE), delta=0.5)[0]
    # routing rule: best modality when > δ and above the other; ties and sub-δ clauses get no KL
    assert [(c.text, c.modality) for c in result.clauses] == [
        ("The face shows a smiling mouth", "video"), ("the voice trembles", "audio"), ("it is a tie", None),
        ("the room is dark", None)]
    ids = tok(text, add_special_tokens=False).input_ids + [tok.eos_token_id]
    masks = route_tokens(tok, [ids], [text], [result.clauses], length=len(ids) + 3)
    spans = token_char_spans(tok, ids, text)
    for modality, clause in (("video", result.clauses[0]), ("audio", result.clauses[1])):
        chosen = [spans[j] for j in range(len(ids)) if masks[modality][0, j]]
        covered = {p for s, e in chosen for p in range(s, e)}
        inside = set(range(clause.start, clause.end))
        assert inside <= covered  # every character of the clause is in a routed token
        assert all(not text[p].isalnum() for p in covered - inside)  # at most separators around it
    assert not (masks["video"] & masks["audio"]).any()
    assert int(masks["video"].sum()) > 0 and int(masks["audio"].sum()) > 0
    assert not masks["video"][0, len(ids):].any()  # padding never routed
