"""The pre-registered paired contrasts of the mini reproduction: hand-computed t-tests, Holm's correction, bounded
intervals, and scripted seed outcomes that must get the verdict they deserve."""

from __future__ import annotations

import pytest
from scipy import stats

from oppo_train.contrasts import (
    CONTRADICTED,
    INCONCLUSIVE,
    PRIMARY,
    SUPPORTED,
    Primary,
    holm,
    paired_contrasts,
    paired_t_p,
    t_interval,
)
from oppo_train.repro_table import across_seeds, contrast_markdown

ACC = (Primary("accuracy"),)


def seeds_of(treated: list[float], control: list[float], key: str = "accuracy") -> dict[int, dict]:
    return {s: {"oppo": {"values": {key: a}}, "baseline": {"values": {key: b}}}
            for s, (a, b) in enumerate(zip(treated, control, strict=True))}


def test_paired_t_matches_the_textbook_value_and_scipy():
    diffs = [0.01, 0.02, 0.03]  # mean 0.02, sd 0.01, t = 0.02 / (0.01 / sqrt 3) = 3.4641 on 2 df
    assert paired_t_p(diffs) == pytest.approx(2 * stats.t.sf(3.464102, 2), rel=1e-5)
    a, b = [0.61, 0.72, 0.55, 0.80, 0.67], [0.58, 0.70, 0.56, 0.74, 0.60]
    assert paired_t_p([x - y for x, y in zip(a, b, strict=True)]) == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert paired_t_p([0.1]) is None and paired_t_p([0.0, 0.0]) == 1.0 and paired_t_p([0.1, 0.1]) == 0.0


def test_holm_by_hand():
    adjusted = holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": None})
    # sorted 0.01, 0.03, 0.04 times 3, 2, 1 = 0.03, 0.06, 0.04 -> monotone 0.03, 0.06, 0.06
    assert adjusted == pytest.approx({"a": 0.03, "c": 0.06, "b": 0.06, "d": None})
    assert holm({"a": 0.5, "b": 0.9}) == {"a": 1.0, "b": 1.0}


def test_intervals_stay_inside_the_metric_range():
    low, high = t_interval([0.95, 1.0, 0.9], 0.0, 1.0)
    assert high == 1.0 and 0.8 < low < 0.95
    cell = across_seeds([0.0, 0.02, 0.6], (0.0, 1.0))
    assert cell["ci_low"] == 0.0 and cell["ci_high"] <= 1.0
    assert across_seeds([-0.9, -1.0, 0.2], (-1.0, 1.0))["ci_low"] == -1.0


def test_a_consistent_gain_is_supported_even_when_seeds_vary_a_lot():
    # the seeds differ by 40 points, the paired difference is always +3: pairing sees what separate means cannot
    treated, control = [0.33, 0.53, 0.73, 0.43, 0.63], [0.30, 0.50, 0.70, 0.40, 0.60]
    [entry] = paired_contrasts(seeds_of(treated, control), [("oppo", "baseline")], ACC)
    assert entry["diffs"] == pytest.approx([0.03] * 5) and entry["verdict"] == SUPPORTED
    treated_ci, control_ci = across_seeds(treated), across_seeds(control)
    assert treated_ci["ci_low"] < control_ci["ci_high"]  # the unpaired intervals overlap


def test_verdicts_of_scripted_outcomes():
    def verdict(treated, control, primary=ACC):
        [entry] = paired_contrasts(seeds_of(treated, control, primary[0].key), [("oppo", "baseline")], primary)
        return entry["verdict"]

    worse = [0.5, 0.6, 0.55, 0.52, 0.58]
    assert verdict(worse, [w + 0.05 + 0.001 * i for i, w in enumerate(worse)]) == CONTRADICTED
    assert verdict([0.5, 0.6, 0.5, 0.6, 0.5], [0.6, 0.5, 0.6, 0.5, 0.5]) == INCONCLUSIVE  # noise around zero
    assert verdict([0.9, 0.5, 0.5, 0.5, 0.5], [0.5] * 5) == INCONCLUSIVE  # one lucky seed is not an effect
    assert verdict([0.7], [0.5]) == INCONCLUSIVE  # one seed: no test
    lower = (Primary("claims_v", higher_is_better=False),)
    assert verdict([0.20, 0.31, 0.25, 0.22, 0.28], [0.40, 0.50, 0.46, 0.41, 0.47], lower) == SUPPORTED


def test_the_correction_covers_the_whole_family():
    # one metric gains on every seed with p ~ 0.006; six others are pure noise: alone it would pass, corrected over
    # the 7 primaries x 4 contrasts it does not
    per_seed = {}
    gain = [0.045, 0.015, 0.03, 0.04, 0.02]
    for s in range(5):
        values = {p.key: 0.5 + 0.01 * ((s * 7 + i) % 3 - 1) for i, p in enumerate(PRIMARY)}
        per_seed[s] = {row: {"values": dict(values)} for row in ("oppo", "baseline", "romni", "oppo_rho0",
                                                                  "oppo_shuffled")}
        per_seed[s]["oppo"]["values"]["accuracy"] += gain[s]
    contrasts = [("oppo", "baseline"), ("oppo", "romni"), ("oppo", "oppo_rho0"), ("oppo", "oppo_shuffled")]
    entries = paired_contrasts(per_seed, contrasts)
    assert len(entries) == 28
    accuracy = [e for e in entries if e["metric"] == "accuracy"]
    assert all(e["p"] < 0.01 and e["p_holm"] > 0.05 and e["verdict"] == INCONCLUSIVE for e in accuracy)
    alone = paired_contrasts(per_seed, [("oppo", "baseline")], ACC)[0]
    assert alone["verdict"] == SUPPORTED
    table = contrast_markdown(entries, 0.05)
    assert "| OPPO (R_omni + J_omni) − GRPO baseline (acc + fmt) | Acc ↑ | +4.5 / +1.5 / +3.0 / +4.0 / +2.0 |" \
        in table and "over all 28 tests" in table
    assert "| Claims −V ↓ |" in table and "↓ ↓" not in table  # one arrow for a lower-is-better metric


def test_seeds_missing_a_value_are_left_out_of_the_pairs():
    per_seed = seeds_of([0.6, 0.7, 0.65], [0.5, 0.55, 0.6])
    per_seed[1]["baseline"]["values"]["accuracy"] = None
    [entry] = paired_contrasts(per_seed, [("oppo", "baseline")], ACC)
    assert entry["seeds"] == [0, 2] and entry["diffs"] == pytest.approx([0.1, 0.05])
