"""The Omni-Perception Reward, clause splitting and routing, and the TRL reward adapters — by hand with a fake
embedder, and once with the real default embedder."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import FakeEmbedder, real_embedder

from mepbench.scoring import (
    Cues,
    completion_clauses,
    completion_text,
    format_reward,
    hit_scores,
    omni_perception,
    route,
    score_completion,
    split_clauses,
    think_span,
)

# ------------------------------------------------------------------------------------------- clauses

def test_split_clauses_rule_and_offsets():
    text = "The face smiles, and the voice trembles; 3.5 seconds of silence.\nBut she laughs!"
    clauses = split_clauses(text)
    assert [c.text for c in clauses] == ["The face smiles", "the voice trembles", "3.5 seconds of silence",
                                         "she laughs"]
    assert all(text[c.start:c.end] == c.text for c in clauses)
    punctuation_only = [c.text for c in split_clauses(text, conjunctions=())]
    assert punctuation_only == ["The face smiles", "and the voice trembles", "3.5 seconds of silence",
                                "But she laughs"]
    assert split_clauses("") == [] and split_clauses(" ... , ;") == []
    assert [c.text for c in split_clauses("brandy, sandy")] == ["brandy", "sandy"]  # "and" only as a word


def test_think_span_and_completion_clause_offsets():
    completion = "<think>A smile. A sigh.</think>\n<answer>happy</answer>"
    start, end = think_span(completion)
    assert completion[start:end] == "A smile. A sigh."
    clauses = completion_clauses(completion)
    assert [(completion[c.start:c.end]) for c in clauses] == ["A smile", "A sigh"]
    assert think_span("no tags <answer>x</answer>") == (0, 8)
    assert think_span("<think>truncated") == (7, 16)


# ------------------------------------------------------------------------------------------- reward, routing

def test_hit_scores_and_route_rules():
    # s = ReLU(max − δ)/(1 − δ) with δ = 0.5: max 0.45 → 0, 1.0 → 1, 0.75 → 0.5.
    sims = np.array([[0.45, 0.1], [1.0, 0.2], [0.3, 0.75]])
    np.testing.assert_allclose(hit_scores(sims, 0.5), [0.0, 1.0, 0.5])
    np.testing.assert_allclose(hit_scores(np.zeros((2, 0)), 0.5), [0.0, 0.0])
    assert route({"video": 0.7, "audio": 0.7}, 0.5) is None   # a tie is not routed
    assert route({"video": 0.5}, 0.5) is None                  # must exceed δ
    assert route({"video": 0.51}, 0.5) == "video"
    assert route({"video": 0.6, "audio": 0.9}, 0.5) == "audio"
    assert route({}, 0.5) is None


COMPLETION = "<think>Her brows are furrowed, and the voice is loud. Nothing else</think><answer>angry</answer>"
TABLE = {
    "Her brows are furrowed": (0.8, 0.6, 0, 0),  # u1
    "the voice is loud": (0, 0.6, 0.8, 0),       # u2
    "Nothing else": (0, 1, 0, 0),                # u3
    "furrowed brows": (1, 0, 0, 0),              # c1 (video)
    "tears": (0, 0, 0, 1),                       # c2 (video)
    "loud voice": (0, 0, 1, 0),                  # c3 (audio)
    "angry": (0, 0.8, 0, 0.6),                   # c4 (emotion)
}
CUES = {"visual_clues": ["furrowed brows", "tears"], "audio_clues": ["loud voice"], "reasoning_emotions": ["angry"]}


def test_omni_perception_hand_computed():
    fake = FakeEmbedder(TABLE)
    result = score_completion(COMPLETION, CUES, fake, delta=0.5)
    # cue × clause cosines: c1 (.8, 0, 0), c2 (0, 0, 0), c3 (0, .8, 0), c4 (.48, .48, .8)
    # s(c1) = (.8 − .5)/.5 = .6, s(c2) = 0, s(c3) = .6, s(c4) = .6
    assert result.cue_scores["video"] == pytest.approx([0.6, 0.0])
    assert result.cue_scores["audio"] == pytest.approx([0.6])
    assert result.cue_scores["emotion"] == pytest.approx([0.6])
    # S_V = .3, S_A = .6, S_E = .6 → R_omni = mean = .5
    assert result.per_category == pytest.approx({"video": 0.3, "audio": 0.6, "emotion": 0.6})
    assert result.reward == pytest.approx(0.5)
    # routing: u1 V .8 vs A 0 → video; u2 V 0 vs A .8 → audio; u3 V 0, A 0 → none (emotion cues are not routed)
    assert [(c.text, c.modality) for c in result.clauses] == [
        ("Her brows are furrowed", "video"), ("the voice is loud", "audio"), ("Nothing else", None)]
    assert all(COMPLETION[c.start:c.end] == c.text for c in result.clauses)
    assert result.clauses[0].scores == pytest.approx({"video": 0.8, "audio": 0.0})
    assert len(fake.calls) == 1  # clauses and cues in one encode call


def test_omni_perception_categories_and_edge_cases():
    fake = FakeEmbedder(TABLE)
    # Paper-code variant without emotion: mean(S_V, S_A) = (.3 + .6)/2.
    assert score_completion(COMPLETION, CUES, fake, categories=("video", "audio")).reward == pytest.approx(0.45)
    # δ = 0.45: s(c1) = (.8 − .45)/.55.
    assert score_completion(COMPLETION, CUES, fake, delta=0.45).cue_scores["video"][0] == pytest.approx(0.35 / 0.55)
    # No reasoning text: every cue scores 0; no cues at all: no reward.
    assert score_completion("<answer>angry</answer>", CUES, fake).reward == 0.0
    empty = score_completion(COMPLETION, {}, fake)
    assert empty.reward is None and all(c.modality is None for c in empty.clauses)
    # Cues value type works too (no emotion category there).
    assert score_completion(COMPLETION, Cues(video=("furrowed brows",)), fake).reward == pytest.approx(0.6)


# ------------------------------------------------------------------------------------------- reward helpers

def test_completion_text_accepts_strings_and_chat_messages():
    assert completion_text("x") == "x"
    assert completion_text([{"role": "assistant", "content": "<answer>sad</answer>"}]) == "<answer>sad</answer>"
    parts = [{"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]
    assert completion_text(parts) == "ab"


def test_format_reward():
    completions = ["<think>t</think><answer>sad, happy</answer>",
                   [{"role": "assistant", "content": "<answer>happy</answer>"}],
                   "<think>t</think><answer>unhappy</answer>",
                   "<think>t</think><answer>sad</answer>"]
    assert format_reward([None] * 4, completions) == [1.0, 0.0, 1.0, 1.0]


def test_real_embedder_reward_and_routing():
    real = real_embedder()
    cues = {"video": ["furrowed brows", "tears"], "audio": ["trembling voice"]}
    relevant = ("<think>Her brows are knitted together, and tears run down her face. Her voice trembles while "
                "she speaks.</think><answer>sad</answer>")
    unrelated = "<think>The weather report mentions rain tomorrow.</think><answer>neutral</answer>"
    good, bad = (score_completion(c, cues, real) for c in (relevant, unrelated))
    assert good.reward > 0.3 and bad.reward == 0.0
    routed = {c.text: c.modality for c in good.clauses}
    assert routed["tears run down her face"] == "video"
    assert routed["Her voice trembles"] == "audio"
    assert routed["she speaks"] is None
    assert omni_perception([relevant], [cues], real)[0].reward == pytest.approx(good.reward)
