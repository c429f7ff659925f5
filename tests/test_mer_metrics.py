"""MER-UniBench metrics on hand-computed cases, the data readers' error paths, and the released AffectGPT outputs
reproducing the published Table 2 / Table 12 numbers (validation-fixtures.md §1)."""

import json
from fractions import Fraction as Fr

import numpy as np
import pytest

from conftest import shared_fixture
from mepbench.scoring.mer_metrics import (
    hit_rate,
    openset_scores,
    parse_openset,
    parse_sentiment,
    score_checkpoint,
    sector_confusion,
    select_checkpoint,
    sentiment_confusion,
    sentiment_scores,
)
from mepbench.scoring.wheel import load_wheels
from mepbench.tasks.mer_data import MER_DATASETS, load_labels, read_affectgpt_results, score_released

RECOMPUTABLE = ("mer2023", "meld", "iemocapfour", "cmumosi", "cmumosei", "sims", "simsv2")
TABLE2 = {"mer2023": 78.54, "meld": 55.65, "iemocapfour": 60.54, "cmumosi": 81.30, "cmumosei": 80.90,
          "sims": 88.49, "simsv2": 86.18}
TABLE12_ACC = {"cmumosi": 81.25, "cmumosei": 80.68, "sims": 88.40, "simsv2": 86.17}
LAST_CHECKPOINT = {"mer2023": 73.69, "meld": 52.09, "iemocapfour": 57.74, "cmumosi": 78.30, "cmumosei": 78.51,
                   "sims": 85.28, "simsv2": 85.31}  # validation-fixtures.md §1.5


@pytest.fixture(scope="module")
def wheels():
    return load_wheels(shared_fixture("emotion_wheel"))


def _close(a, b):
    return a == pytest.approx(float(b) * 100, abs=1e-9)


# ---- parsing ----

def test_parse_openset_and_sentiment():
    assert parse_openset("[Calm, 'Confident', positive]") == ["calm", "confident", "positive"]
    assert parse_openset(["Happy ", "SAD"]) == ["happy", "sad"]
    assert parse_openset("[]") == []
    assert [parse_sentiment(s) for s in ("positive", "negative", "neutral")] == [1, -1, 0]
    # exact match only: anything else counts 0 (then scored as negative)
    assert [parse_sentiment(s) for s in ("Positive", "positive.", " positive", "mixed", "")] == [0] * 5
    assert parse_sentiment(-3) == -1


# ---- HIT ----

def test_hit_hand_computed(wheels):
    # label → sectors W1..W5 (benchmarks.md §1.3): happy (happy, happy, joyful, joy, powerful);
    # surprise (surprised, surprised, powerful, fear, –); neutral (–)*5;
    # disgust (disgusted, disgusted, –, disgust, –)
    # predictions: joy = happy's sectors; fear → (scared, happy, joyful, genius, joyful); [] → nothing
    # W1: scored clips happy, surprise, disgust → hits 1, 0, 0 → 1/3      W2: same → 1/3
    # W3: disgust dropped → happy 1, surprise 0 (joyful ≠ powerful) → 1/2  W4: 1/3
    # W5: only happy scored → 1/1.  HIT = (1/3 + 1/3 + 1/2 + 1/3 + 1) / 5 = 1/2 → 50
    score = hit_rate(["[joy]", "[fear]", "[happy]", "[]"], ["happy", "surprise", "neutral", "disgust"], wheels)
    assert score.per_wheel == pytest.approx([100 / 3, 100 / 3, 50, 100 / 3, 100])
    assert score.n_scored == (3, 3, 2, 3, 1)
    assert score.hit == pytest.approx(50.0)


def test_hit_fear_quirk_counts_happy_as_a_hit(wheels):
    # label fear → (scared, happy, joyful, genius, joyful); prediction happy → (happy, happy, joyful, joy, powerful)
    # hits in W2 and W3 only → HIT = 2/5 → 40
    assert hit_rate(["[happy]"], ["fear"], wheels).hit == pytest.approx(40.0)


def test_hit_with_no_scorable_clip_is_nan(wheels):
    assert np.isnan(hit_rate(["[happy]"], ["neutral"], wheels).hit)


# ---- WAF / ACC ----

SENT_VALUES = [2.0, -1.0, 0.0, 1.5, -0.5, 0.4]
SENT_PREDS = ["positive", "neutral", "positive", "mixed", "negative", "Positive."]


def test_sentiment_hand_computed():
    # value 0 is dropped; truth = val > 0 → [1, 0, 1, 0, 1]; parsed → [+1, 0, 0, −1, 0] > 0 → [1, 0, 0, 0, 0]
    # ACC = 3/5 → 60
    # F1(pos): tp 1, 3 true, 1 predicted → 2/4;  F1(neg): tp 2, 2 true, 4 predicted → 4/6
    # WAF = (3 · 1/2 + 2 · 2/3) / 5 = 17/30 → 56.67
    score = sentiment_scores(SENT_PREDS, SENT_VALUES)
    assert score.acc == pytest.approx(60.0)
    assert score.waf == pytest.approx(100 * 17 / 30)
    assert (score.n_scored, score.n_zero_dropped) == (5, 1)


def test_sentiment_matches_sklearn_weighted_f1():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    values = rng.choice([-2.0, -0.4, 0.0, 0.6, 3.0], size=200)
    preds = rng.choice(["positive", "negative", "neutral", "mixed"], size=200).tolist()
    keep = values != 0
    truth, guess = values[keep] > 0, np.array([parse_sentiment(p) for p in preds])[keep] > 0
    score = sentiment_scores(preds, values)
    assert score.waf == pytest.approx(100 * sklearn_metrics.f1_score(truth, guess, average="weighted"), abs=1e-12)
    assert score.acc == pytest.approx(100 * sklearn_metrics.accuracy_score(truth, guess), abs=1e-12)


def test_sentiment_confusion_shows_neutral_counted_negative():
    # truth negative: −1.0 → neutral (middle), −0.5 → negative;
    # truth positive: 2.0 → positive, 1.5 'mixed' and 0.4 'Positive.' → middle column
    confusion = sentiment_confusion(SENT_PREDS, SENT_VALUES)
    assert confusion.rows == ("negative", "positive")
    assert confusion.counts == ((1, 1, 0), (0, 2, 1))


# ---- Fs / Precision_s / Recall_s ----

def test_openset_hand_computed(wheels):
    # happy, sad, angry, surprise land in distinct sectors of every wheel where they map; surprise is dropped in W5
    # A: label [happy]        pred [joy, sad, angry] → p 1/3, r 1
    # B: label [happy, sad]   pred [sad]             → p 1,   r 1/2
    # C: label [neutral]      pred [happy]           → skipped (label maps to nothing)
    # D: label [angry]        pred []                → p 0,   r 0
    # E: label [surprise]     pred [surprise]        → p 1,   r 1 in W1-W4; skipped in W5
    # W1-W4: P = (1/3 + 1 + 0 + 1)/4 = 7/12, R = (1 + 1/2 + 0 + 1)/4 = 5/8, F = 2PR/(P+R) = 35/58
    # W5:    P = (1/3 + 1 + 0)/3 = 4/9,     R = (1 + 1/2 + 0)/3 = 1/2,    F = 8/17
    # Fs = (4·35/58 + 8/17)/5, Precision_s = (4·7/12 + 4/9)/5 = 5/9, Recall_s = (4·5/8 + 1/2)/5 = 3/5
    # (dataset-level F: per-clip F averaged would differ, and so does 2·P_s·R_s/(P_s+R_s) = 0.57692 ≠ Fs = 0.57688)
    preds = ["[joy, sad, angry]", "[sad]", "[happy]", "[]", "[surprise]"]
    labels = ["[happy]", "[happy, sad]", "[neutral]", "[angry]", "[surprise]"]
    score = openset_scores(preds, labels, wheels)
    fs = (4 * Fr(35, 58) + Fr(8, 17)) / 5
    assert score.fs == pytest.approx(100 * float(fs))
    assert score.precision == pytest.approx(100 * 5 / 9) and score.recall == pytest.approx(60.0)
    assert score.per_wheel[0] == pytest.approx((100 * 35 / 58, 100 * 7 / 12, 100 * 5 / 8))
    assert score.per_wheel[4] == pytest.approx((100 * 8 / 17, 100 * 4 / 9, 50.0))
    assert score.n_scored == (4, 4, 4, 4, 3)
    p, r = score.precision, score.recall
    assert abs(score.fs - 2 * p * r / (p + r)) > 1e-3


def test_openset_all_misses_is_zero_not_nan(wheels):
    assert openset_scores(["[sad]"], ["[happy]"], wheels).fs == 0.0


def test_openset_subset_regression(wheels):
    """The 332 public OV-MERD labels against the released OV-MERD+ caches (validation-fixtures.md §1.6)."""
    import csv

    path = shared_fixture("mer_unibench", "MERTools", "MER2024", "ov_store", "check-openset.csv")
    with path.open(newline="", encoding="utf-8") as handle:
        labels = {row["name"]: row["openset"] for row in csv.DictReader(handle)}
    expected = json.loads(shared_fixture("mer_unibench", "expected", "ovmerd_subset_scores.json").read_text())
    expected = expected["affectgpt_ovmerdplus_on_332_subset"]
    checkpoints = read_affectgpt_results(shared_fixture("mer_unibench", "AffectGPT", "output"), "ovmerdplus")
    assert sorted(checkpoints) == sorted(expected)
    for name, files in checkpoints.items():
        score = score_checkpoint("openset", labels, wheels, files["openset"])
        assert _close(score["fs"], expected[name]["Fs"]) and _close(score["primary"], expected[name]["Fs"])
        assert _close(score["precision"], expected[name]["Precision_s"])
        assert _close(score["recall"], expected[name]["Recall_s"])


# ---- confusion, selection ----

def test_sector_confusion(wheels):
    # wheel 1: clip 1 happy → predicted happy + sad; clip 2 neutral → happy; clip 3 happy → nothing
    confusion = sector_confusion(["[joy, sad]", "[happy]", "[]"], ["happy", "neutral", "happy"], wheels, 1)
    assert confusion.rows == ("happy", "neutral")
    assert confusion.columns == ("mad", "disgusted", "sad", "happy", "surprised", "scared", "(none)")
    assert confusion.counts == ((0, 0, 1, 1, 0, 0, 1), (0, 0, 0, 1, 0, 0, 0))
    by_sector = sector_confusion(["[joy, sad]", "[happy]", "[]"], ["happy", "neutral", "happy"], wheels, 1,
                                 by_label=False)
    assert by_sector.rows == ("(none)", "happy")


def test_select_checkpoint():
    scores = {"checkpoint_000035_x": 70.0, "checkpoint_000030_x": 70.0, "checkpoint_000040_x": float("nan"),
              "checkpoint_000060_x": 60.0}
    assert select_checkpoint(scores) == "checkpoint_000030_x"  # first maximum in sorted order, NaN never wins
    assert select_checkpoint(scores, "last") == "checkpoint_000060_x"
    assert select_checkpoint(scores, "checkpoint_000035_x") == "checkpoint_000035_x"
    assert select_checkpoint(scores, "60") == "checkpoint_000060_x"
    with pytest.raises(ValueError, match="not found"):
        select_checkpoint(scores, "checkpoint_000099")


def test_missing_prediction_names_the_cache(wheels):
    with pytest.raises(ValueError, match=r"cache\.npz.*1 of 2"):
        score_checkpoint("hit", {"a": "happy", "b": "sad"}, wheels, {"a": "[happy]"}, source="cache.npz")


# ---- data layer: error paths ----

def _fake_labels(root, dataset, corpus, split="test_corpus"):
    spec = MER_DATASETS[dataset]
    path = root / spec.folder / spec.label_file
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{split: np.array(corpus, dtype=object)})
    return path


def test_missing_and_malformed_label_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"cmumosi-process/label\.npz"):
        load_labels(tmp_path, "cmumosi", allow_pickle=True)
    path = tmp_path / "meld-process" / "label.npz"
    path.parent.mkdir()
    path.write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"meld-process/label\.npz"):
        load_labels(tmp_path, "meld", allow_pickle=True)
    _fake_labels(tmp_path, "sims", {"v": {"emo": 0, "val": 1.0}}, split="train_corpus")
    with pytest.raises(ValueError, match=r"sims-process/label\.npz: no split 'test_corpus'"):
        load_labels(tmp_path, "sims", allow_pickle=True)
    _fake_labels(tmp_path, "meld", {"test_dia0_utt0": {"emo": 9, "val": -10}})
    with pytest.raises(ValueError, match=r"label\.npz: clip 'test_dia0_utt0' has 'emo' 9"):
        load_labels(tmp_path, "meld", allow_pickle=True)


def test_wrong_sample_count_names_file_and_counts(tmp_path):
    _fake_labels(tmp_path, "cmumosi", {f"c{i}": {"emo": 0, "val": 1.0} for i in range(3)})
    with pytest.raises(ValueError, match=r"cmumosi-process/label\.npz.*has 3 clips, expected 686"):
        load_labels(tmp_path, "cmumosi", allow_pickle=True)


def test_pickled_labels_need_the_opt_in(tmp_path):
    _fake_labels(tmp_path, "cmumosi", {f"c{i}": {"emo": 0, "val": 1.0} for i in range(686)})
    with pytest.raises(ValueError, match=r"label\.npz holds pickled objects.*allow_pickle=True"):
        load_labels(tmp_path, "cmumosi")
    assert len(load_labels(tmp_path, "cmumosi", allow_pickle=True)) == 686


def test_ovlabel_csv(tmp_path):
    path = tmp_path / "ovmerdplus-process" / "ovlabel.csv"
    path.parent.mkdir()
    rows = ["name,openset", 'a,"[\'happy\', \'calm\']"', "b,[]"] + [f"c{i},[sad]" for i in range(530)]
    path.write_text("\n".join(rows) + "\n")
    labels = load_labels(tmp_path, "ovmerd-plus")
    assert labels["a"] == "happy, calm" and labels["b"] == "neutral"  # empty set → neutral, as upstream
    path.write_text("\n".join(rows[:-1]) + "\n")
    with pytest.raises(ValueError, match=r"ovlabel\.csv.*531 clips, expected 532"):
        load_labels(tmp_path, "ovmerdplus")


def test_results_layout_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"results-meld"):
        read_affectgpt_results(tmp_path, "meld")
    (tmp_path / "results-meld" / "run1").mkdir(parents=True)
    (tmp_path / "results-meld" / "run2").mkdir()
    with pytest.raises(ValueError, match=r"2 run folders"):
        read_affectgpt_results(tmp_path, "meld")
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        read_affectgpt_results(tmp_path, "meld", run="run1")


def test_missing_sentiment_cache_is_named(tmp_path):
    data, results = tmp_path / "data", tmp_path / "out"
    names = [f"c{i}" for i in range(686)]
    _fake_labels(data, "cmumosi", {n: {"emo": 0, "val": 1.0} for n in names})
    folder = results / "results-cmumosi" / "run"
    folder.mkdir(parents=True)
    np.savez(folder / "checkpoint_000030_a-openset.npz", filenames=np.array(names),
             fileitems=np.array(["[happy]"] * 686))
    with pytest.raises(FileNotFoundError, match=r"checkpoint_000030_a-openset-sentiment\.npz"):
        score_released(results, data, None, ["cmumosi"], allow_pickle=True)


# ---- released AffectGPT outputs → published numbers ----

@pytest.fixture(scope="module")
def released():
    root = shared_fixture("mer_unibench")
    return score_released(root / "AffectGPT" / "output", root / "MERTools" / "MERBench" / "dataset",
                          shared_fixture("emotion_wheel"), RECOMPUTABLE, allow_pickle=True)


@pytest.fixture(scope="module")
def expected():
    return json.loads(shared_fixture("mer_unibench", "expected", "expected_scores.json").read_text())["datasets"]


def test_labels_have_published_counts_and_classes():
    root = shared_fixture("mer_unibench", "MERTools", "MERBench", "dataset")
    mer = load_labels(root, "mer2023", allow_pickle=True)
    assert {c: list(mer.values()).count(c) for c in set(mer.values())} == {
        "angry": 105, "happy": 93, "neutral": 88, "worried": 57, "sad": 50, "surprise": 18}
    iemocap = load_labels(root, "iemocap", allow_pickle=True)
    assert len(iemocap) == 1241 and list(iemocap.values()).count("happy") == 442
    assert list(load_labels(root, "meld", allow_pickle=True).values()).count("fear") == 50
    nonzero = {d: sum(v != 0 for v in load_labels(root, d, allow_pickle=True).values())
               for d in ("cmumosi", "cmumosei", "sims", "simsv2")}
    assert nonzero == {"cmumosi": 656, "cmumosei": 3634, "sims": 388, "simsv2": 911}


def test_released_caches_of_all_nine_datasets_load():
    output = shared_fixture("mer_unibench", "AffectGPT", "output")
    for name, spec in MER_DATASETS.items():
        checkpoints = read_affectgpt_results(output, name)
        assert len(checkpoints) == 7
        first = next(iter(checkpoints.values()))
        assert first["answers"] is not None and first["answers"].name.endswith(".npz")
        assert len(first["openset"]) == spec.count
        assert (first["sentiment"] is not None) == (spec.kind == "sentiment")


@pytest.mark.parametrize("dataset", RECOMPUTABLE)
def test_released_outputs_reproduce_table2(released, dataset):
    result = released[dataset]
    assert round(result["value"], 2) == pytest.approx(TABLE2[dataset], abs=1e-9)
    if dataset in TABLE12_ACC:
        assert round(result["secondary"]["ACC"], 2) == pytest.approx(TABLE12_ACC[dataset], abs=1e-9)
    assert result["metric"] == ("WAF" if dataset in TABLE12_ACC else "HIT")


@pytest.mark.parametrize("dataset", RECOMPUTABLE)
def test_released_outputs_equal_every_expected_checkpoint(released, expected, dataset):
    result, want = released[dataset], expected[dataset]
    assert result["checkpoint"] == want["best_checkpoint"]
    assert sorted(result["per_checkpoint"]) == sorted(want["per_checkpoint"])
    for name, values in want["per_checkpoint"].items():
        got = result["per_checkpoint"][name]
        if "HIT" in values:
            assert _close(got["hit"], values["HIT"])
            assert all(_close(g, w) for g, w in zip(got["per_wheel"], values["HIT_per_wheel"]))
        else:
            assert _close(got["waf"], values["WAF"]) and _close(got["acc"], values["ACC"])


def test_hit_denominators_exclude_unmapped_labels(released):
    # validation-fixtures.md §1.3: neutral everywhere, surprise in W5, disgust in W3/W5 leave the denominator
    n = {d: released[d]["per_checkpoint"][released[d]["checkpoint"]]["n_scored"]
         for d in ("mer2023", "meld", "iemocapfour")}
    assert n == {"mer2023": (323, 323, 323, 323, 305), "meld": (1354, 1354, 1286, 1354, 1005),
                 "iemocapfour": (857,) * 5}


def test_winner_confusion_is_reported(released):
    meld = released["meld"]["confusion"]["wheel3"]
    assert "fear" in meld["rows"] and meld["columns"][-1] == "(none)"
    mosi = released["cmumosi"]["confusion"]
    assert sum(map(sum, mosi["counts"])) == 656


def test_last_checkpoint_selection(wheels):
    root = shared_fixture("mer_unibench")
    last = score_released(root / "AffectGPT" / "output", root / "MERTools" / "MERBench" / "dataset",
                          shared_fixture("emotion_wheel"), RECOMPUTABLE, select="last", allow_pickle=True)
    assert {d: round(r["value"], 2) for d, r in last.items()} == LAST_CHECKPOINT
    assert {r["checkpoint"] for r in last.values()} == {"checkpoint_000060_loss_0.480"}
