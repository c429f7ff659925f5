"""The shipped scripted backend: deterministic answers, chosen failures, a fingerprint per script, and a real
`mepbench eval --backend scripted` run whose scores are what its script deserves."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from mepbench.backends import backend_names, create_backend
from mepbench.backends.scripted import ScriptedBackend
from mepbench.types import Request


def request(sample_id: str, variant: str = "full") -> Request:
    return Request(messages=(), sample_id=sample_id, variant=variant)


def test_hashed_answers_are_deterministic_and_drawn_from_the_labels():
    backend = ScriptedBackend(labels="calm, tense")
    first = [r.text for r in backend.generate([request(f"s{i}") for i in range(40)])]
    again = [r.text for r in ScriptedBackend(labels=["calm", "tense"]).generate([request(f"s{i}") for i in range(40)])]
    assert first == again and set(first) == {"<think>cues</think><answer>calm</answer>",
                                                   "<think>cues</think><answer>tense</answer>"}
    masked = [r.text for r in backend.generate([request(f"s{i}", "mask:video") for i in range(40)])]
    assert masked != first  # the variant is part of the hash
    assert len(backend.asked) == 80


def test_fixed_answers_failures_and_fingerprints():
    backend = create_backend("scripted", "stub", answer="<answer>happy</answer>", fail_ids="b, c")
    out = backend.generate([request("a"), request("b"), request("c")])
    assert out[0].text == "<answer>happy</answer>" and out[0].error is None
    assert [r.error for r in out[1:]] == ["scripted failure for b", "scripted failure for c"]
    prints = {ScriptedBackend().fingerprint(), ScriptedBackend(answer="x").fingerprint(),
              ScriptedBackend(labels="a,b").fingerprint(), ScriptedBackend("other").fingerprint()}
    assert len(prints) == 4  # a different script never shares a cache entry
    assert ScriptedBackend(fail_ids=["a"]).fingerprint() == ScriptedBackend().fingerprint()  # failures are transient
    assert "scripted" in backend_names()
    with pytest.raises(ValueError, match="at least one label"):
        ScriptedBackend(labels=" , ")


@pytest.mark.slow
def test_eval_with_the_scripted_backend_scores_what_its_script_deserves(tmp_path, session_cache):
    args = [str(Path(sys.executable).parent / "mepbench"), "eval", "--backend", "scripted", "--model", "stub",
            "--model-arg", "answer=<think>she smiles</think><answer>happy</answer>", "--tasks", "mep-synth",
            "--limit", "12", "--output-dir", str(tmp_path / "run")]
    done = subprocess.run(args, env={**os.environ, "MEPBENCH_CACHE": str(session_cache)}, capture_output=True,
                          text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["metadata"]["backend"] == "scripted" and results["metadata"]["model"]["model"] == "stub"
    rows = pd.read_parquet(tmp_path / "run" / "samples.parquet")
    main = rows[(rows.variant == "full") & (rows.kind == "main")]
    assert main["item"].eq("").all() and set(rows.kind) == {"main", "probe", "control", "negative"}
    truth = main.label
    accuracy = results["tasks"]["mep-synth"]["summary"]["emotion_accuracy"]
    assert len(main) == 12 and accuracy == pytest.approx((truth == "happy").mean())
    assert set(rows.response.dropna()) == {"<think>she smiles</think><answer>happy</answer>"}
