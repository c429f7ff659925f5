"""The CLI for real: the default run in a subprocess, SIGKILL + resume, bad data through tiny-omni, cache commands."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from helpers import broken_dataset, write_spec

from mepbench.cli import _fmt
from mepbench.models import TRAINED_TINY_OMNI

BIN = Path(sys.executable).parent


def _env(cache: Path) -> dict[str, str]:
    return {**os.environ, "MEPBENCH_CACHE": str(cache), "COLUMNS": "120"}


def _mepbench(*args: str, cache: Path, cwd: Path, timeout: int = 3600) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "mepbench"), *args], cwd=cwd, env=_env(cache), capture_output=True,
                          text=True, timeout=timeout)


def _cached_entries(cache: Path) -> int:
    db = cache / "responses" / "responses.sqlite"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def _metrics(run_dir: Path) -> dict:
    results = json.loads((run_dir / "results.json").read_text())
    keys = ("variants", "reliance", "utilization", "faithfulness", "grounded_utilization", "claims", "summary")
    return {name: {k: t[k] for k in keys} for name, t in results["tasks"].items()}


@pytest.fixture(scope="module")
def default_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """`mepbench eval` with no options, in a fresh cache, as a new user runs it."""
    root = tmp_path_factory.mktemp("default")
    done = _mepbench("eval", "--output-dir", "run", cache=root / "cache", cwd=root)
    assert done.returncode == 0, done.stderr[-3000:]
    return root, done


def test_default_run_prints_table_and_writes_results(default_run):
    root, done = default_run
    assert "mep-synth" in done.stdout and "accuracy" in done.stdout and "flip vs full" in done.stdout
    results = json.loads((root / "run" / "results.json").read_text())
    task = results["tasks"]["mep-synth"]
    assert task["n_samples"] == 200 and task["n_failed"] == 0
    assert set(task["variants"]) == {"full", "mask:video", "mask:audio", "mask:text", "mask:video+audio"}
    assert results["metadata"]["model"]["model_type"] == "qwen2_5_omni_thinker"
    assert task["mask_mode"] == "zero-features" and "perception" in done.stdout
    summary = task["summary"]
    assert set(summary) >= {"utilization_recall", "acc_at_v", "acc_at_a", "control_acc_v", "balanced_faithfulness_a",
                            "text_alone_accuracy", "pf_v", "pf_a", "tnr_absent_v", "grounded_recall_video",
                            "claim_rate_v"} and all(v is not None for v in summary.values())
    assert "PF@V" in done.stdout and "TNR-absent" in done.stdout and "grounded recall" in done.stdout
    stats = results["stats"]
    assert stats["generated"] == stats["requests"] > 1000
    frame = pd.read_parquet(root / "run" / "samples.parquet")
    assert len(frame) == stats["requests"] and frame["error"].isna().all() and (frame["completion_tokens"] > 0).all()
    assert frame["item"].str.startswith("probe:").sum() == frame["item"].str.startswith("control:").sum() > 0
    assert frame["item"].str.startswith("negative:").sum() == 800  # 2 absent cues per clip and modality
    assert ((frame["kind"] == "main") == (frame["item"] == "")).all()
    assert set(frame["kind"]) == {"main", "probe", "control", "negative"}
    assert results["metadata"]["model"]["path"] == str(TRAINED_TINY_OMNI)  # the shipped trained model, not a build
    assert not (root / "cache" / "models").exists()


def _pct(cell: dict) -> str:
    return f"{100 * cell['value']:.1f}"


def _readme_default_rows(task: dict) -> list[str]:
    """The README's default-run table rows as they must read for the results of `task` (mep-synth)."""
    accuracy = {name: v["metrics"]["accuracy"] for name, v in task["variants"].items()}
    recall, grounded, claims = task["utilization"]["recall"], task["grounded_utilization"], task["claims"]
    main = [_fmt(accuracy["full"]), *(_pct(accuracy[f"mask:{m}"]) for m in ("video", "audio", "text")),
            _pct(recall["video"]), _pct(recall["audio"]), _fmt(grounded["video"]), _fmt(grounded["audio"]),
            _fmt(claims["video"]["rate"]), _fmt(claims["audio"]["rate"])]
    rows = ["| " + " | ".join(main) + " |"]
    for modality in ("video", "audio"):
        probes = task["faithfulness"][modality]
        parts = [f"{_pct(probes[k]['accuracy'])} (n = {probes[k]['n']})" for k in ("control", "absent", "masked")]
        headline = _fmt(probes["headline"]).split(" ", 1)
        rows.append(f"| {modality} | **{headline[0]}** {headline[1]} | " + " | ".join(parts) + " |")
    return rows


def test_readme_default_run_table_is_what_the_default_run_prints(default_run):
    """The numbers the README shows for the default run are the ones a fresh default run computes."""
    root, _ = default_run
    task = json.loads((root / "run" / "results.json").read_text())["tasks"]["mep-synth"]
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text().splitlines()
    for row in _readme_default_rows(task):
        assert row in readme, f"README.md lacks the default run's row {row!r}"


def test_sigkill_mid_run_then_resume_equals_uninterrupted(default_run, tmp_path):
    """A run of the first 60 clips killed with SIGKILL, then resumed in its own cache, equals the same 60 clips
    scored from the uninterrupted default run's cache (every one of those answers a cache hit)."""
    root, _ = default_run
    cache = tmp_path / "cache"
    for name in ("models", "data"):  # reuse the built model and suite; the response cache starts empty
        (cache / name).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(root / "cache" / name, cache / name)
    args = ("eval", "--limit", "60")
    proc = subprocess.Popen([str(BIN / "mepbench"), *args, "--output-dir", "killed"], cwd=tmp_path,
                            env=_env(cache), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while _cached_entries(cache) < 200 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _cached_entries(cache)
    uninterrupted = _mepbench(*args, "--output-dir", str(tmp_path / "uninterrupted"), cache=root / "cache", cwd=root)
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-3000:]
    reference = json.loads((tmp_path / "uninterrupted" / "results.json").read_text())["stats"]
    total = reference["requests"]
    assert reference["generated"] == 0 and reference["cache_hits"] == total  # the default run answered them all
    assert 200 <= before < total and not (tmp_path / "killed" / "results.json").exists()
    resumed = _mepbench(*args, "--output-dir", "resumed", cache=cache, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    stats = json.loads((tmp_path / "resumed" / "results.json").read_text())["stats"]
    assert stats["cache_hits"] == before and stats["generated"] == total - before
    assert _metrics(tmp_path / "resumed") == _metrics(tmp_path / "uninterrupted")


def test_bad_media_through_tiny_omni_is_named_and_counted(default_run, tmp_path):
    root, _ = default_run
    manifest = broken_dataset(tmp_path / "data", n_good=3)
    write_spec(tmp_path / "specs", "broken", {"loader": "manifest", "path": str(manifest),
                                              "require": ["video", "audio", "text"]})
    done = _mepbench("eval", "--tasks", "broken", "--include-path", str(tmp_path / "specs"), "--output-dir", "out",
                     cache=root / "cache", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    frame = pd.read_parquet(tmp_path / "out" / "samples.parquet")
    full = frame[frame["variant"] == "full"].set_index("sample_id")["error"]
    errors = list(full.dropna())
    assert len(full) == 6 and len(errors) == 3
    assert any("cannot decode video" in e and "corrupt.mp4" in e for e in errors)
    assert any("missing media file" in e and "does-not-exist.wav" in e and "'audio'" in e for e in errors)
    assert any("'subtitle'" in e and "manifest.jsonl" in e for e in errors)
    reasons = frame[frame["variant"] == "full"].set_index("sample_id")["error_reason"].dropna()
    assert sorted(reasons) == ["backend_error", "invalid_sample", "media_error"]  # decoding happens in the backend
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["tasks"]["broken"]["variants"]["full"]["failed"] == 3
    assert frame[frame["error"].isna()]["response"].notna().all()


def test_tasks_and_cache_commands(default_run):
    root, _ = default_run
    listed = _mepbench("tasks", cache=root / "cache", cwd=root)
    assert listed.returncode == 0 and "mep-synth" in listed.stdout
    info = _mepbench("cache", "info", cache=root / "cache", cwd=root)
    entries = int(info.stdout.split("entries:")[1].split()[0])
    total = json.loads((root / "run" / "results.json").read_text())["stats"]["requests"]
    assert entries >= total, "every response of the default run is cached"


def test_cache_clear_and_bad_flags(tmp_path):
    cache = tmp_path / "cache"
    from mepbench.cache import ResponseCache
    from mepbench.types import Response

    store = ResponseCache(cache / "responses")
    store.put_many([("k", Response(text="x"))], "m")
    store.close()
    cleared = _mepbench("cache", "clear", cache=cache, cwd=tmp_path)
    assert "removed 1 cached responses" in cleared.stdout and _cached_entries(cache) == 0
    bad = _mepbench("eval", "--model-arg", "novalue", cache=cache, cwd=tmp_path)
    assert bad.returncode != 0 and "key=value" in bad.stderr
    unknown = _mepbench("eval", "--tasks", "nope", "--backend", "replay", "--model", str(tmp_path / "x.jsonl"),
                        cache=cache, cwd=tmp_path)
    assert unknown.returncode != 0


def test_oppo_train_resolves_presets_and_overrides():
    done = subprocess.run([str(BIN / "oppo-train"), "rl", "--config", "rl_tiny", "max_steps=3", "--print-config"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "max_steps: 3" in done.stdout and "path: tiny-omni" in done.stdout
    bad = subprocess.run([str(BIN / "oppo-train"), "rl", "--config", "rl_tiny", "no_such_key=1"],
                         capture_output=True, text=True, timeout=600)
    assert bad.returncode == 2 and "no_such_key" in bad.stderr
