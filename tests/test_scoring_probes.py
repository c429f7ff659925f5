"""Yes/no probe parsing and the three-part faithfulness score (TPR, TNR-absent, TNR-masked, PF) — hand-computed."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mepbench.scoring import ProbeItem, faithfulness, parse_yes_no


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


def items(kind: str, answers: list[str], clips: list[str] | None = None) -> list[ProbeItem]:
    return [ProbeItem(clip, kind, a) for clip, a in zip(clips or [f"c{k}" for k in range(len(answers))], answers)]


def test_three_part_score_by_hand():
    # controls (expect yes): 3 of 4 correct, one unparsed; negatives (expect no): 1 of 2; masked (expect no): 2 of 2
    probes = (items("control", ["yes", "Yes.", "no", "maybe"]) + items("negative", ["no", "yes"], ["c0", "c1"])
              + items("probe", ["No.", "nope"], ["c0", "c2"]))
    f = faithfulness(probes, resamples=300)
    assert (f.control.n, f.control.n_correct, f.control.n_yes, f.control.n_no, f.control.n_unparsed) == (4, 2, 2, 1, 1)
    assert f.control.accuracy.value == 0.5 and f.negative.accuracy.value == 0.5 and f.masked.accuracy.value == 1.0
    assert f.balanced_absent.value == pytest.approx(0.5) and f.balanced_masked.value == pytest.approx(0.75)
    assert f.headline.value == pytest.approx(0.5)  # the smaller of the two balanced accuracies
    assert f.yes_rate.value == pytest.approx(3 / 8) and f.n_clips == 4
    d = f.to_dict()
    assert d["absent"]["yes_rate"] == 0.5 and d["control"]["yes_rate"] == 0.5 and d["masked"]["n"] == 2
    for est in (f.headline, f.balanced_absent, f.balanced_masked, f.control.accuracy, f.yes_rate):
        assert 0.0 <= est.ci_low <= est.value <= est.ci_high <= 1.0


@pytest.mark.parametrize("policy, headline", [
    (lambda kind: "yes", 0.5),                                  # always yes
    (lambda kind: "no", 0.5),                                   # always no
    (lambda kind: "no" if kind == "probe" else "yes", 0.5),     # detects the mask, never looks at the cue
    (lambda kind: "yes" if kind == "control" else "no", 1.0),   # perceives
    (lambda kind: "no" if kind == "control" else "yes", 0.0),   # inverted
])
def test_headline_of_answer_policies(policy, headline):
    probes = [ProbeItem(f"c{k}", kind, policy(kind)) for k in range(10) for kind in ("control", "negative", "probe")]
    assert faithfulness(probes, resamples=100).headline.value == pytest.approx(headline)


def test_a_biased_coin_scores_chance_whatever_its_bias():
    rng = np.random.default_rng(0)
    for p_yes in (0.1, 0.5, 0.9):
        probes = [ProbeItem(f"c{k}", kind, "yes" if rng.random() < p_yes else "no")
                  for k in range(3000) for kind in ("control", "negative", "probe")]
        f = faithfulness(probes, resamples=200)
        assert f.headline.value == pytest.approx(0.5, abs=0.03)
        assert f.headline.ci_low < 0.5 + 0.03 and f.headline.ci_high > 0.5 - 0.03


def test_interval_resamples_clips_not_probes():
    # two clips, each with perfectly correlated answers: a clip-level bootstrap sees only 2 units, so its
    # interval is much wider than one that treats the 40 probes as independent
    probes = [ProbeItem(c, "control", a) for c, a in (("good", "yes"), ("bad", "no")) for _ in range(20)]
    f = faithfulness(probes, resamples=500)
    assert f.control.accuracy.value == 0.5
    assert f.control.accuracy.ci_low == 0.0 and f.control.accuracy.ci_high == 1.0


def test_empty_sets_give_nan_not_errors():
    f = faithfulness(items("control", ["yes", "yes"]), resamples=50)
    assert f.control.accuracy.value == 1.0
    assert math.isnan(f.negative.accuracy.value) and math.isnan(f.headline.value)
    assert f.to_dict()["absent"]["yes_rate"] is None
    with pytest.raises(ValueError, match="unknown probe kinds"):
        faithfulness([ProbeItem("c", "positive", "yes")])
