"""Trainer rewards: wheel and exact-match set-F1, format, the cue parts (one embedding call), presets, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import shared_fixture
from helpers import FakeEmbedder

from mepbench.scoring import format_reward, make_accuracy_reward, set_f1
from oppo_train.rewards import (
    PRESETS,
    CueScorer,
    RewardError,
    WeightedReward,
    build_rewards,
    compute_rewards,
)


def test_set_f1_by_hand():
    assert set_f1({"a", "b"}, {"b", "c", "d"}) == pytest.approx(2 * 1 / 5)
    assert set_f1(set(), {"a"}) == 0.0 and set_f1({"a"}, {"a"}) == 1.0


def test_exact_match_accuracy_with_synonyms():
    acc = make_accuracy_reward(synonyms={"joy": "happy"})
    completions = ["<think>x</think><answer>joy, sad</answer>", "<think>x</think><answer>angry</answer>",
                   "happy but no tags", "<think>x</think><answer>happy</answer>"]
    got = acc([""] * 4, completions, label=["happy", ["angry", "sad"], "happy", None])
    # {happy, sad} vs {happy}: 2/3 ; {angry} vs {angry, sad}: 2/3 ; no answer tag: 0 ; no gold: None
    assert got == [pytest.approx(2 / 3), pytest.approx(2 / 3), 0.0, None]


def test_wheel_accuracy_against_published_sectors():
    acc = make_accuracy_reward(shared_fixture("emotion_wheel"))
    completions = ["<think>x</think><answer>joy</answer>", "<think>x</think><answer>worried</answer>",
                   "<think>x</think><answer>calm</answer>"]
    got = acc([""] * 3, completions, label=["happy", "[fear]", "neutral"])
    # happy and joy share every wheel's sector: 1. fear → (scared, happy, joyful, genius, joyful) and worried →
    # (scared, fearful, scared, fear, scared) agree in wheel 1 only: 1/5. neutral maps to no sector → exact match: 0.
    assert got == [pytest.approx(1.0), pytest.approx(0.2), 0.0]


# Unit vectors: video cue e1, audio cue e2, emotion cue e3; clauses hand-placed so every cosine is known.
TABLE = {
    "smiling mouth": (1, 0, 0, 0), "trembling voice": (0, 1, 0, 0), "happy": (0, 0, 1, 0),
    "a wide smile": (0.8, 0.6, 0, 0), "the voice shakes": (0, 0.9, 0, math.sqrt(0.19)),
    "it looks happy": (0, 0, 0.75, math.sqrt(1 - 0.5625)), "nothing here": (0, 0, 0, 1),
}
COMPLETION = "<think>a wide smile, the voice shakes, it looks happy, nothing here</think><answer>happy</answer>"
CUES = {"visual_clues": ["smiling mouth"], "audio_clues": ["trembling voice"], "reasoning_emotions": ["happy"]}


def test_cue_parts_by_hand_and_one_embedding_call():
    embedder = FakeEmbedder(TABLE)
    scorer = CueScorer(embedder, delta=0.5)
    rewards = build_rewards({**PRESETS["code"], "omni": 0.5}, scorer)
    batch = compute_rewards(rewards, [""], [COMPLETION], {"label": ["happy"], "cues": [CUES]}, ["s1"])
    # s(c) = (max cos − .5)/.5: video .8 → .6 ; audio .9 → .8 ; emotion .75 → .5
    assert batch.parts["perception"] == [pytest.approx(0.7)]
    assert batch.parts["emotion_cues"] == [pytest.approx(0.5)]
    assert batch.parts["omni"] == [pytest.approx((0.6 + 0.8 + 0.5) / 3)]
    assert batch.parts["accuracy"] == [1.0] and batch.parts["format"] == [1.0]
    assert batch.total == [pytest.approx(1.0 + 0.1 + 0.5 * 0.7 + 0.5 * 0.5 + 0.5 * (1.9 / 3))]
    assert len(embedder.calls) == 1 and scorer.calls == 1
    routed = {c.text: c.modality for c in scorer.score([COMPLETION], [CUES])[0].clauses}
    assert routed == {"a wide smile": "video", "the voice shakes": "audio", "it looks happy": None,
                      "nothing here": None}


def test_presets_follow_the_paper_and_the_code():
    assert PRESETS["paper"] == {"accuracy": 1.0, "format": 1.0, "omni": 0.5}
    assert PRESETS["code"] == {"accuracy": 1.0, "format": 0.1, "perception": 0.5, "emotion_cues": 0.5}
    with pytest.raises(KeyError, match="cue scorer"):
        build_rewards(PRESETS["paper"])


def test_none_parts_count_zero_in_total():
    scorer = CueScorer(FakeEmbedder(TABLE))
    rewards = build_rewards(PRESETS["paper"], scorer)
    batch = compute_rewards(rewards, [""], ["<think>nothing here</think><answer>x</answer>"],
                            {"label": [None], "cues": [{}]}, ["s1"])
    assert batch.parts["omni"] == [None] and batch.parts["accuracy"] == [None]
    assert batch.total == [1.0]  # format only


def test_reward_errors_name_the_sample():
    def picky(prompts, completions, label, **_):
        return [1.0 / (0 if lab == "bad" else 1) for lab in label]

    def nan_reward(prompts, completions, **_):
        return [0.0, float("nan")]

    cols = {"label": ["ok", "bad"]}
    with pytest.raises(RewardError, match=r"reward 'picky' failed on sample 'id-2' \(completion 1\): "
                                          r"ZeroDivisionError"):
        compute_rewards([WeightedReward("picky", picky, 1.0)], ["", ""], ["a", "b"], cols, ["id-1", "id-2"])
    with pytest.raises(RewardError, match=r"'nan_reward' returned nan for sample 'id-2'"):
        compute_rewards([WeightedReward("nan_reward", nan_reward, 1.0)], ["", ""], ["a", "b"], cols, ["id-1", "id-2"])
    with pytest.raises(RewardError, match="returned 1 values for 2"):
        compute_rewards([WeightedReward("short", lambda p, c, **_: [1.0], 1.0)], ["", ""], ["a", "b"], cols,
                        ["id-1", "id-2"])


def test_format_reward_is_mepbench_s():
    rewards = build_rewards({"format": 1.0})
    assert rewards[0].fn is format_reward
    assert np.allclose(rewards[0].fn([""], ["<think>a</think><answer>b</answer>"]), [1.0])
