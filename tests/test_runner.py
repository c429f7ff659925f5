"""The runner with a scripted backend: failures recorded, dedupe, caching, resume, groups, results files."""

import json
import textwrap

import pytest
import yaml

from helpers import broken_dataset, copy_builtin_spec, write_spec
from mepbench.backends.scripted import ScriptedBackend
from mepbench.masking import MaskMode
from mepbench.run_dir import load_run
from mepbench.results import write_run
from mepbench.runner import EvalConfig, RunFailed, run_eval
from mepbench.backends.base import Capabilities


@pytest.fixture
def broken(tmp_path):
    manifest = broken_dataset(tmp_path / "data")
    specs = tmp_path / "specs"
    write_spec(specs, "broken", {"loader": "manifest", "path": str(manifest), "require": ["video", "audio", "text"]})
    return specs


def _config(tmp_path, specs, tasks, **kw):
    return EvalConfig(tasks=tasks, include_paths=[specs], cache_dir=tmp_path / "cache", bootstrap=200, **kw)


def test_bad_samples_are_failed_counted_and_named_while_others_are_scored(tmp_path, broken, scripted):
    out = run_eval(_config(tmp_path, broken, ["broken"]), backend=scripted)
    errors = {r["sample_id"]: r["error"] for r in out.rows if r["error"] and r["variant"] == "full"}
    assert len(errors) == 2, errors
    missing = next(e for e in errors.values() if "does-not-exist.wav" in e)
    assert "missing media file" in missing and "field 'audio'" in missing
    empty = next(e for e in errors.values() if "subtitle" in e)
    assert "manifest.jsonl" in empty and "field 'subtitle'" in empty
    agg = out.tasks["broken"]
    assert agg["n_samples"] == 9 and agg["variants"]["full"]["n"] == 9 and agg["variants"]["full"]["failed"] == 2
    scored = [r for r in out.rows if not r["error"]]
    assert len(scored) == 4 * 7 and all(r["pred"] in SPEC_LABELS for r in scored)
    assert {r.sample_id for r in scripted.asked} == {r["sample_id"] for r in scored}


SPEC_LABELS = {"happy", "sad", "angry", "surprised", "fearful", "neutral"}


def test_failed_rows_count_as_wrong(tmp_path, broken):
    always_right = ScriptedBackend(answer=None)
    out = run_eval(_config(tmp_path, broken, ["broken"]), backend=always_right)
    rows = [r for r in out.rows if r["variant"] == "full"]
    acc = out.tasks["broken"]["variants"]["full"]["metrics"]["accuracy"]["value"]
    assert acc == pytest.approx(sum(bool(r.get("correct")) for r in rows) / len(rows))


def test_fail_fast_stops_at_first_failure(tmp_path, broken, scripted):
    with pytest.raises(RunFailed, match="subtitle|does-not-exist"):
        run_eval(_config(tmp_path, broken, ["broken"], fail_fast=True), backend=scripted)


def test_backend_error_is_recorded_and_not_cached(tmp_path):
    specs = copy_builtin_spec(tmp_path / "specs", "mini", n=6)
    flaky = ScriptedBackend(fail_ids=frozenset({"synth-00002"}))
    out = run_eval(_config(tmp_path, specs, ["mini"]), backend=flaky)
    assert {r["sample_id"] for r in out.rows if r["error"]} == {"synth-00002"}
    again = ScriptedBackend()
    run_eval(_config(tmp_path, specs, ["mini"]), backend=again)
    assert {r.sample_id for r in again.asked} == {"synth-00002"}, "only the failed sample is asked again"


def test_rerun_hits_cache_and_prompt_edit_invalidates(tmp_path):
    specs = copy_builtin_spec(tmp_path / "specs", "mini", n=5)
    first = ScriptedBackend()
    out1 = run_eval(_config(tmp_path, specs, ["mini"]), backend=first)
    assert len(first.asked) == 20 and out1.stats["cache_hits"] == 0
    second = ScriptedBackend()
    out2 = run_eval(_config(tmp_path, specs, ["mini"]), backend=second)
    assert second.asked == [] and out2.stats["cache_hits"] == 20
    assert out2.tasks["mini"]["variants"] == out1.tasks["mini"]["variants"]
    (specs / "templates").mkdir()
    (specs / "templates" / "emotion_system.jinja").write_text("You are an emotion expert. Answer in tags.")
    third = ScriptedBackend()
    out3 = run_eval(_config(tmp_path, specs, ["mini"]), backend=third)
    assert len(third.asked) == 20 and out3.tasks["mini"]["fingerprint"] != out1.tasks["mini"]["fingerprint"]


def test_identical_requests_across_tasks_are_generated_once(tmp_path):
    specs = copy_builtin_spec(tmp_path / "specs", "copy-a", n=4)
    copy_builtin_spec(specs, "copy-b", n=4)
    backend = ScriptedBackend()
    out = run_eval(_config(tmp_path, specs, ["copy-a", "copy-b"]), backend=backend)
    assert out.stats["requests"] == 32 and out.stats["unique_requests"] == 16 and len(backend.asked) == 16
    assert out.tasks["copy-a"]["variants"] == out.tasks["copy-b"]["variants"]


class CrashAfter(ScriptedBackend):
    """Dies (like a kill) after answering `n` batches."""

    def __init__(self, n):
        super().__init__()
        self.left = n

    def generate(self, requests):
        if self.left == 0:
            raise KeyboardInterrupt
        self.left -= 1
        return super().generate(requests)


def test_crash_mid_run_resumes_without_recomputing(tmp_path):
    specs = copy_builtin_spec(tmp_path / "specs", "mini", n=6)
    with pytest.raises(KeyboardInterrupt):
        run_eval(_config(tmp_path, specs, ["mini"], batch_size=4), backend=CrashAfter(3))
    resumed = ScriptedBackend()
    out = run_eval(_config(tmp_path, specs, ["mini"], batch_size=4), backend=resumed)
    assert out.stats["cache_hits"] == 12 and len(resumed.asked) == 12
    clean = run_eval(_config(tmp_path / "clean", specs, ["mini"], batch_size=4), backend=ScriptedBackend())
    assert out.tasks["mini"]["variants"] == clean.tasks["mini"]["variants"]
    assert out.tasks["mini"]["reliance"] == clean.tasks["mini"]["reliance"]


def test_zero_features_needs_a_backend_that_can(tmp_path):
    specs = copy_builtin_spec(tmp_path / "specs", "mini", n=2)
    plain = ScriptedBackend(capabilities=Capabilities(feature_masking=False))
    with pytest.raises(ValueError, match="cannot zero processor features"):
        run_eval(_config(tmp_path, specs, ["mini"], mask_mode=MaskMode.ZERO_FEATURES), backend=plain)
    out = run_eval(_config(tmp_path, specs, ["mini"], mask_mode=MaskMode.ZERO_FEATURES), backend=ScriptedBackend())
    modes = {r["variant"]: r["mask_mode"] for r in out.rows}
    assert modes == {"full": None, "mask:video": "video:zero-features", "mask:audio": "audio:zero-features",
                     "mask:text": "text:blank"}


def test_groups_average_primary_metrics(tmp_path):
    specs = copy_builtin_spec(tmp_path / "specs", "copy-a", n=3)
    copy_builtin_spec(specs, "copy-b", n=4)
    (specs / "both.yaml").write_text(yaml.safe_dump({"group": "both", "tasks": ["copy-a", "copy-b"]}))
    out = run_eval(_config(tmp_path, specs, ["both"]), backend=ScriptedBackend())
    values = [out.tasks[t]["variants"]["full"]["metrics"]["accuracy"]["value"] for t in ("copy-a", "copy-b")]
    assert out.groups["both"]["mean"] == pytest.approx(sum(values) / 2)


def test_variants_can_be_restricted(tmp_path):
    specs = copy_builtin_spec(tmp_path / "specs", "mini", n=3)
    out = run_eval(_config(tmp_path, specs, ["mini"], variants=["full", "mask:audio"]), backend=ScriptedBackend())
    assert {r["variant"] for r in out.rows} == {"full", "mask:audio"}
    assert set(out.tasks["mini"]["reliance"]) == {"mask:audio"}


def test_results_files_hold_metrics_metadata_and_one_row_per_cell(tmp_path, broken):
    config = _config(tmp_path, broken, ["broken"], seed=3)
    out = run_eval(config, backend=ScriptedBackend())
    write_run(out, config, tmp_path / "run")
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    frame = load_run(tmp_path / "run").samples
    assert len(frame) == 9 * 4 and frame["error"].notna().sum() == 2 * 4
    meta = results["metadata"]
    assert meta["seed"] == 3 and meta["mask_mode"] == {"broken": "drop"} and meta["model_fingerprint"] == ScriptedBackend().fingerprint()
    assert "torch" in meta["packages"] and meta["task_fingerprints"]["broken"]
    full = results["tasks"]["broken"]["variants"]["full"]["metrics"]["accuracy"]
    assert full["ci_low"] <= full["value"] <= full["ci_high"]
    prompt = frame.loc[frame["variant"] == "mask:video", "prompt"].iloc[0]
    assert [p["type"] for p in prompt[-1]["content"]] == ["audio", "text"], "drop removes the video part"
    assert "there is no video" in prompt[-1]["content"][-1]["text"]
    hashes = frame.loc[frame["variant"] == "full", "media_sha256"].iloc[0]
    assert set(hashes) == {"video", "audio"} and all(len(h) == 64 for h in hashes.values())


def test_spec_errors_name_the_file(tmp_path):
    bad = tmp_path / "specs"
    bad.mkdir()
    (bad / "oops.yaml").write_text(textwrap.dedent("""
        task: oops
        dataset: {loader: manifest, path: x.jsonl}
        labels: [a]
        promt: {user: emotion_user.jinja}
    """))
    with pytest.raises(ValueError, match=r"oops.yaml: unknown keys \['promt'\]"):
        run_eval(_config(tmp_path, bad, ["oops"]), backend=ScriptedBackend())
