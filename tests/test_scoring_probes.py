"""Yes/no probe parsing, probe accuracy, and the balanced faithfulness score — hand-computed."""

from __future__ import annotations

import math

import pytest

from mepbench.scoring import faithfulness, parse_yes_no, probe_accuracy


@pytest.mark.parametrize("text, want", [
    ("Yes.", True),
    ("yes", True),
    ("No", False),
    ("NO.", False),
    ("No, the video does not show furrowed brows.", False),
    ("Nope", False),
    ("Yeah, there is a sigh.", True),
    ("I do not know.", None),
    ("Nothing is visible; nobody speaks.", None),
    ("Yesterday it rained.", None),
    ("The answer is: no", False),
    ("No, although one could say yes.", False),           # both words: the first decides
    ("Yes, but no tears.", True),
    ("<think>Is there a sigh? yes maybe</think>no", False),  # reasoning is ignored
    ("<think>no audio</think><answer>Yes</answer>", True),   # the answer tag takes priority
    ("yes <answer>no</answer>", False),
    ("<answer>unsure</answer> yes", None),                  # a tag that decides nothing is unparseable
    ("", None),
    ("no-one knows", None),
])
def test_parse_yes_no(text, want):
    assert parse_yes_no(text) is want


def test_probe_accuracy_counts_unparsed_as_wrong():
    answers = ["No.", "no", "Yes", "I cannot tell"]
    score = probe_accuracy(answers, expected=False, resamples=200)
    # correct: items 1 and 2 → 2/4; one yes, two no, one unparsed
    assert score.accuracy.value == pytest.approx(0.5)
    assert (score.n, score.n_correct, score.n_yes, score.n_no, score.n_unparsed) == (4, 2, 1, 2, 1)
    assert score.correct == (True, True, False, False)
    per_item = probe_accuracy(["yes", "no"], expected=[True, False])
    assert per_item.accuracy.value == 1.0
    with pytest.raises(ValueError):
        probe_accuracy(["yes"], expected=[True, False])
    assert math.isnan(probe_accuracy([], expected=False).accuracy.value)


def test_always_no_model_cannot_beat_chance_on_the_balanced_score():
    masked = ["no"] * 10
    controls = ["no"] * 10
    always_no = faithfulness(masked, controls, resamples=200)
    # masked accuracy 10/10, control accuracy 0/10 → balanced (1 + 0)/2 = 0.5
    assert always_no.masked.accuracy.value == 1.0 and always_no.control.accuracy.value == 0.0
    assert always_no.balanced.value == pytest.approx(0.5)
    always_yes = faithfulness(["yes"] * 10, ["Yes."] * 10)
    assert always_yes.balanced.value == pytest.approx(0.5)
    # A perceiving model: 8/10 "no" when masked, 7/10 "yes" when present → (0.8 + 0.7)/2 = 0.75 > 0.5.
    perceiving = faithfulness(["no"] * 8 + ["yes"] * 2, ["yes"] * 7 + ["no", "no", "maybe"], resamples=200)
    assert perceiving.balanced.value == pytest.approx(0.75)
    assert perceiving.control.n_unparsed == 1
    assert perceiving.balanced.ci_low <= 0.75 <= perceiving.balanced.ci_high
    assert perceiving.to_dict()["balanced"]["value"] == pytest.approx(0.75)


def test_balanced_score_needs_both_sets():
    assert math.isnan(faithfulness(["no"], []).balanced.value)
