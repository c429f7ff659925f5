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


# -- intervals: Wilson for proportions, BCa for the rest --------------------------------------------------------------

def test_wilson_interval_by_hand_and_at_the_edges():
    from mepbench.scoring.metrics import wilson

    got = wilson(8, 10)  # Wilson (1927): p = 0.8, n = 10, z = 1.96 -> [0.4902, 0.9433]
    assert (got.value, got.method, got.n) == (0.8, "wilson", 10)
    assert got.ci_low == pytest.approx(0.4902, abs=1e-4) and got.ci_high == pytest.approx(0.9433, abs=1e-4)
    none, every = wilson(0, 20), wilson(20, 20)
    assert none.ci_low == 0.0 and none.ci_high == pytest.approx(0.1611, abs=1e-4), "not collapsed to a point at 0"
    assert every.ci_high == 1.0 and every.ci_low == pytest.approx(0.8389, abs=1e-4)
    assert wilson(0, 0).value != wilson(0, 0).value and got.warning is None


def test_wilson_covers_at_the_nominal_rate_where_the_percentile_bootstrap_does_not():
    from mepbench.scoring.metrics import bootstrap_estimate, bootstrap_indices, wilson

    rng = np.random.default_rng(0)
    p, n, trials = 0.9, 15, 400
    hits_wilson = hits_boot = 0
    for t in range(trials):
        x = (rng.random(n) < p).astype(float)
        w = wilson(x.sum(), n)
        b = bootstrap_estimate(x.mean(), x[bootstrap_indices(n, 400, t)].mean(axis=-1), n)
        hits_wilson += w.ci_low <= p <= w.ci_high
        hits_boot += b.ci_low <= p <= b.ci_high
    assert hits_wilson / trials >= 0.92 > hits_boot / trials, (hits_wilson, hits_boot)


def test_bca_corrects_the_skew_of_a_bounded_statistic():
    from mepbench.aggregation import PairedMetric, estimate

    rng = np.random.default_rng(1)
    values = rng.exponential(1.0, 60)
    rows = [{"v": v} for v in values]
    variance = PairedMetric("var", lambda rs: np.array([r["v"] for r in rs]), lambda u, idx: u[idx].var(axis=-1))
    got = estimate(variance, rows, 2000, 0)
    assert got.method == "bca-bootstrap" and got.ci_low < got.value < got.ci_high and got.warning is None
    plain = np.percentile(values[np.random.default_rng(0).integers(0, 60, (2000, 60))].var(axis=-1), [2.5, 97.5])
    assert got.ci_high > plain[1], "BCa moves the interval up for a right-skewed statistic (Efron & Tibshirani §14)"
    few = estimate(variance, rows[:12], 500, 0)
    assert few.warning and "n = 12 < 30" in few.warning
    proportion = PairedMetric("share", lambda rs: np.array([r["v"] > 1 for r in rs], dtype=float),
                              lambda u, idx: u[idx].mean(axis=-1), proportion=True)
    share = estimate(proportion, rows, 2000, 0)
    assert share.method == "wilson" and share.value == pytest.approx((values > 1).mean())
