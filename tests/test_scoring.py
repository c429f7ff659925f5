"""Answer parsing and the vectorised metrics, checked against hand-computed values and sklearn."""

import numpy as np
import pytest
from sklearn.metrics import f1_score

from mepbench.scoring import match_label, parse_answer
from mepbench.scoring import metrics as M

LABELS = ["happy", "sad", "angry", "surprised", "fearful", "neutral"]


def test_parse_strict_format():
    p = parse_answer("<think>The face smiles.</think>\n<answer>happy, excited</answer>")
    assert p.format_ok and p.has_answer_tag and p.think == "The face smiles." and p.words == ["happy", "excited"]


def test_parse_without_tags_falls_back_to_whole_text_and_flags_it():
    p = parse_answer("I think the person is sad.")
    assert not p.format_ok and not p.has_answer_tag and p.answer == "I think the person is sad."
    assert not parse_answer("<answer>sad</answer> trailing").format_ok


def test_match_label_uses_word_boundaries_and_first_occurrence():
    assert match_label("unhappy", LABELS) is None
    assert match_label("sad, then happy", LABELS) == "sad"
    assert match_label("Joyful!", LABELS, {"joyful": "happy"}) == "happy"
    assert match_label("not-sad", LABELS) is None
    assert match_label("", LABELS) is None


def test_accuracy_and_f1_hand_computed():
    t = np.array([0, 0, 1, 1]); p = np.array([0, 1, 1, -1])
    assert M.accuracy(t, p, 2) == pytest.approx(0.5)
    # class 0: tp1 fp0 fn1 -> 2/3 ; class 1: tp1 fp1 fn1 -> 1/2 ; macro = 7/12
    assert M.macro_f1(t, p, 2) == pytest.approx(7 / 12)
    assert M.weighted_f1(t, p, 2) == pytest.approx(7 / 12)


def test_f1_matches_sklearn_on_random_data():
    rng = np.random.default_rng(3)
    t = rng.integers(0, 6, 300); p = np.where(rng.random(300) < 0.1, -1, rng.integers(0, 6, 300))
    labels = sorted(set(t) | set(p) - {-1})
    assert M.macro_f1(t, p, 6) == pytest.approx(f1_score(t, p, labels=labels, average="macro", zero_division=0))
    assert M.weighted_f1(t, p, 6) == pytest.approx(f1_score(t, p, labels=labels, average="weighted",
                                                            zero_division=0))
    idx = M.bootstrap_indices(300, 50, 0)
    batch = M.macro_f1(t[idx], p[idx], 6)
    assert batch[7] == pytest.approx(f1_score(t[idx[7]], p[idx[7]], labels=sorted(set(t[idx[7]]) | set(p[idx[7]]) - {-1}),
                                              average="macro", zero_division=0))


def test_bootstrap_ci_brackets_value_and_is_seeded():
    t = np.array([0, 1] * 50); p = np.array([0] * 100)
    idx = M.bootstrap_indices(100, 500, 1)
    est = M.score("accuracy", t, p, 2, idx)
    assert est.value == pytest.approx(0.5) and est.ci_low < 0.5 < est.ci_high
    assert est == M.score("accuracy", t, p, 2, M.bootstrap_indices(100, 500, 1))


def test_paired_drop_and_flip_rate():
    t = np.array([0, 1, 0, 1]); full = np.array([0, 1, 0, 1]); masked = np.array([0, 0, 0, 0])
    idx = M.bootstrap_indices(4, 100, 0)
    assert M.paired_drop("accuracy", t, full, masked, 2, idx).value == pytest.approx(0.5)
    assert M.flip_rate(full, masked, idx).value == pytest.approx(0.5)
