"""The vision-tower linear probe: the classifier, the targets, the pixel reference and a run on a real checkpoint."""

import numpy as np

from mepbench.types import Sample
from oppo_train.tower_probe import (
    balanced_accuracy,
    face_targets,
    fit_probe,
    pixel_features,
    run_probe,
    shown_expression,
)


def test_probe_recovers_a_linear_signal_and_not_noise():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 400)
    x = rng.normal(size=(400, 20))
    x[:, :3] += 4.0 * np.eye(3)[y]
    assert balanced_accuracy(y[300:], fit_probe(x[:300], y[:300], x[300:])) > 0.9
    shuffled = rng.permutation(y)
    assert balanced_accuracy(shuffled[300:], fit_probe(x[:300], shuffled[:300], x[300:])) < 0.45


def test_balanced_accuracy_weights_classes_equally():
    truth = np.array([0] * 9 + [1])
    assert balanced_accuracy(truth, np.zeros(10, int)) == 0.5
    assert balanced_accuracy(truth, truth) == 1.0


def sample(label, condition, conflict=None, cues=()):
    return Sample(id="x", label=label, cues={"video": list(cues)},
                  metadata={"conditions": {"video": condition}, "conflict_emotion": {"video": conflict}})


def test_targets_follow_what_the_face_shows():
    clips = [sample("happy", "agree", cues=["smiling mouth"]), sample("happy", "missing"),
             sample("sad", "conflict", "angry", ["furrowed brows", "frowning mouth"])]
    assert [shown_expression(c) for c in clips] == ["happy", "neutral", "angry"]
    targets = face_targets(clips)
    assert targets["smiling mouth"].tolist() == [1, 0, 0]
    assert targets["furrowed brows"].tolist() == [0, 0, 1]
    assert targets["expression"].tolist() == [0, 5, 2]


def test_pixel_features_average_time_and_colour_then_downsample():
    frames = np.zeros((2, 112, 112, 3), np.uint8)
    frames[0, :, :56] = 255  # left half white in one of two frames → 127.5 after the time average
    image = pixel_features(frames).reshape(28, 28)
    assert np.allclose(image[:, :14], 127.5) and np.allclose(image[:, 14:], 0.0)


def test_probe_run_on_a_real_checkpoint(session_cache):
    report = run_probe("tiny-omni-random", n=40, seed=1, cache_dir=session_cache, l2=1e-1)
    assert report["clips"] == 40
    accuracies = report["balanced_accuracy"]
    assert set(accuracies) == {"pixels", "tower_mean", "tower_tokens"}
    for scores in accuracies.values():
        assert scores and all(0.0 <= v <= 1.0 for v in scores.values())
    assert set(report["chance"]) == {*report["positives"], "expression"}
    assert report["chance"]["expression"] == 1 / 6
