"""MER-UniBench through the harness: replaying AffectGPT's released folder reproduces the paper, and a live
model's answers go through the published extraction calls."""

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import shared_fixture

from mepbench.backends.scripted import ScriptedBackend
from mepbench.runner import EvalConfig, make_context, run_eval
from mepbench.scoring.openset import OPENSET_PROMPT, SENTIMENT_PROMPT
from mepbench.synth import generate_suite
from mepbench.tasks.mer_data import load_labels
from mepbench.tasks.mer_replay import is_affectgpt_results
from mepbench.types import Response

PUBLISHED = {"mer2023": ("HIT", 78.54), "meld": ("HIT", 55.65), "iemocap": ("HIT", 60.54), "cmumosi": ("WAF", 81.30),
             "cmumosei": ("WAF", 80.90), "sims": ("WAF", 88.49), "simsv2": ("WAF", 86.18)}
ACC = {"cmumosi": 81.25, "cmumosei": 80.68, "sims": 88.40, "simsv2": 86.17}


def _paths():
    return (shared_fixture("mer_unibench", "AffectGPT", "output"),
            shared_fixture("mer_unibench", "MERTools", "MERBench", "dataset"), shared_fixture("emotion_wheel"))


def test_replaying_released_outputs_reproduces_table_2(tmp_path):
    results, data, wheels = _paths()
    assert is_affectgpt_results(results)
    config = EvalConfig(model=str(results), backend="replay", tasks=list(PUBLISHED), data_root=data,
                        task_args={"*": {"wheel_dir": str(wheels)}}, allow_pickle=True, cache_dir=tmp_path)
    out = run_eval(config)
    for task, (metric, value) in PUBLISHED.items():
        agg = out.tasks[task]
        assert agg["variants"]["full"]["metrics"][metric]["value"] == pytest.approx(value, abs=0.005), task
        assert agg["selected_checkpoint"] in agg["checkpoints"] and len(agg["checkpoints"]) == 7
        assert agg["extraction"].startswith("cache:") and agg["variants"]["full"]["failed"] == 0
    for task, acc in ACC.items():
        assert out.tasks[task]["variants"]["full"]["metrics"]["ACC"]["value"] == pytest.approx(acc, abs=0.005)
    assert out.tasks["mer2023"]["selected_checkpoint"].startswith("checkpoint_000050")
    last = run_eval(replace(config, tasks=["mer2023"], task_args={"mer2023": {"checkpoint_select": "last",
                                                                            "wheel_dir": str(wheels)}}))
    assert last.tasks["mer2023"]["variants"]["full"]["metrics"]["HIT"]["value"] == pytest.approx(73.69, abs=0.005)


def test_replay_needs_the_pickle_opt_in_and_the_wheels(tmp_path, monkeypatch):
    results, data, wheels = _paths()
    monkeypatch.delenv("MEPBENCH_ALLOW_PICKLE", raising=False)
    monkeypatch.delenv("MEPBENCH_WHEEL_DIR", raising=False)
    base = dict(model=str(results), backend="replay", tasks=["mer2023"], data_root=data, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="label-6way.npz holds pickled objects"):
        run_eval(EvalConfig(**base, task_args={"*": {"wheel_dir": str(wheels)}}))
    with pytest.raises(ValueError, match="emotion-wheel files; pass --task-arg wheel_dir=FOLDER"):
        run_eval(EvalConfig(**base, allow_pickle=True))


def test_the_issue_command_shape_end_to_end(tmp_path):
    results, data, wheels = _paths()
    done = subprocess.run(
        [str(Path(sys.executable).parent / "mepbench"), "eval", "--backend", "replay", "--model", str(results),
         "--tasks", "mer2023,sims", "--data-root", str(data), "-T", f"wheel_dir={wheels}", "-T",
         "mer2023.checkpoint_select=best", "--output-dir", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300, env={**os.environ, "MEPBENCH_ALLOW_PICKLE": "1",
                                                          "MEPBENCH_CACHE": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr[-2000:]
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert round(saved["tasks"]["mer2023"]["variants"]["full"]["metrics"]["HIT"]["value"], 2) == 78.54
    assert round(saved["tasks"]["sims"]["variants"]["full"]["metrics"]["WAF"]["value"], 2) == 88.49
    assert "checkpoint checkpoint_000050" in done.stdout


class Judge(ScriptedBackend):
    """Answers the published extraction prompts: a list for the open-set call, a word for the sentiment call."""

    def generate(self, requests):
        self.asked.extend(requests)
        out = []
        for r in requests:
            text = r.messages[-1].text()
            if text.startswith(SENTIMENT_PROMPT.split("{")[0]):
                out.append(Response(text="Output: positive" if "happy" in text.split("Input:")[-1] else "negative"))
            else:
                reason = text.split("Input: ")[-1]
                out.append(Response(text="\nOutput: [" + ", ".join(re.findall(r"happy|sad|worried", reason)) + "]"))
        return out


@pytest.fixture
def mini_mer(tmp_path):
    """The real MER2023 and SIMS label files beside real media for their first 4 clips (the rest missing)."""
    _, data, _ = _paths()
    root = tmp_path / "data"
    suite = generate_suite(tmp_path / "suite", n=4, seed=2)
    for folder, label in (("mer2023-dataset-process", "label-6way.npz"), ("sims-process", "label.npz")):
        (root / folder / "video").mkdir(parents=True)
        (root / folder / "audio").mkdir()
        shutil.copy(data / folder / label, root / folder / label)
    return root, suite


def _media(root, folder, names, suite):
    for i, name in enumerate(names):
        shutil.copy(suite / "clips" / f"synth-{i:05d}.mp4", root / folder / "video" / f"{name}.mp4")
        shutil.copy(suite / "clips" / f"synth-{i:05d}.wav", root / folder / "audio" / f"{name}.wav")
    (root / folder / "transcription-engchi-polish.csv").write_text(
        "name,english\n" + "".join(f"{n},I am fine {n}\n" for n in names))


def test_live_answers_go_through_the_published_extraction(mini_mer, tmp_path):
    root, suite = mini_mer
    names = sorted(load_labels(root, "mer2023", allow_pickle=True))[:4]
    _media(root, "mer2023-dataset-process", names, suite)
    model = ScriptedBackend(answer="The character's emotional state is happy, worried.")
    judge = Judge()
    config = EvalConfig(tasks=["mer2023"], data_root=root,
                        task_args={"*": {"wheel_dir": str(shared_fixture("emotion_wheel"))}},
                        allow_pickle=True, limit=4, variants=["full", "mask:text"], cache_dir=tmp_path / "cache")
    out = run_eval(config, backend=model, context=replace(make_context(config, model), judges={"extract": judge}))
    agg = out.tasks["mer2023"]
    asked = [r.messages[-1].text() for r in judge.asked]
    assert asked[0] == OPENSET_PROMPT.format(reason="The character's emotional state is happy, worried.")
    assert all(r.params.temperature == 0.0 and r.params.max_new_tokens == 512 for r in judge.asked)
    rows = [r for r in out.rows if r["variant"] == "full"]
    assert {r["openset"] for r in rows} == {"[happy, worried]"}, "the leading 'Output:' and newline are stripped"
    labels = load_labels(root, "mer2023", allow_pickle=True)
    # by hand: the labels are sad, neutral, happy, neutral; neutral maps to no sector and leaves the
    # denominator in every wheel; [happy, worried] hits "happy" only (worried → scared/fearful/fear) → 1/2
    assert [labels[n] for n in names] == ["sad", "neutral", "happy", "neutral"]
    assert agg["variants"]["full"]["metrics"]["HIT"]["value"] == pytest.approx(50.0)
    text_masked = [r for r in model.asked if r.variant == "mask:text"][0].messages[-1].text()
    assert "Subtitle content" not in text_masked and "Subtitle content" in model.asked[0].messages[-1].text()
    reliance = agg["reliance"]["mask:text"]
    flips = reliance["flip_rate"]  # same answers: no flip, a Wilson interval that still allows some at n = 4
    assert (flips["value"], flips["ci_low"], flips["method"], reliance["n"]) == (0.0, 0.0, "wilson", 4)
    assert flips["ci_high"] == pytest.approx(0.4899, abs=1e-4)
    drop = reliance["drop"]["HIT"]  # no drop, and a paired bootstrap over 4 clips says it is rough
    assert (drop["value"], drop["ci_low"], drop["ci_high"], drop["method"]) == (0.0, 0.0, 0.0,
                                                                                "paired-percentile-bootstrap")
    assert "n = 4 < 30" in drop["warning"]
    hit = agg["variants"]["full"]["metrics"]["HIT"]
    assert hit["ci_low"] <= hit["value"] <= hit["ci_high"] and hit["n"] == 4  # clip-resampled interval


def test_sentiment_sets_make_the_second_call(mini_mer, tmp_path):
    root, suite = mini_mer
    labels = load_labels(root, "sims", allow_pickle=True)
    names = sorted(labels)[:4]
    _media(root, "sims-process", names, suite)
    judge = Judge()
    config = EvalConfig(tasks=["sims"], data_root=root, allow_pickle=True, limit=4, variants=["full"],
                        cache_dir=tmp_path / "cache")
    model = ScriptedBackend(answer="He looks happy.")
    out = run_eval(config, backend=model, context=replace(make_context(config, model), judges={"extract": judge}))
    calls = [r.messages[-1].text() for r in judge.asked]
    assert sum(c.startswith("Please act as an expert") for c in calls) == 4
    acc = out.tasks["sims"]["variants"]["full"]["metrics"]["ACC"]["value"]
    nonzero = [n for n in names if labels[n] != 0]
    assert acc == pytest.approx(100 * sum(labels[n] > 0 for n in nonzero) / len(nonzero))


def test_missing_media_is_a_per_sample_error_for_a_live_model(mini_mer, tmp_path):
    root, _ = mini_mer
    config = EvalConfig(tasks=["mer2023"], data_root=root,
                        task_args={"*": {"wheel_dir": str(shared_fixture("emotion_wheel"))}},
                        allow_pickle=True, limit=2, variants=["full"], cache_dir=tmp_path / "cache")
    model = ScriptedBackend(answer="happy")
    out = run_eval(config, backend=model, context=replace(make_context(config, model), judges={"extract": Judge()}))
    assert all("missing media file" in r["error"] and "mer2023-dataset-process/video" in r["error"]
               for r in out.rows)
    assert out.tasks["mer2023"]["variants"]["full"]["failed"] == 2
