"""Strict JSON documents: undefined metrics become null with their pointer and token kept, and a run directory's
results.json loads with a reader that refuses bare NaN."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from conftest import load_strict_json
from mepbench import strict_json


def test_non_finite_values_become_null_and_are_listed_by_json_pointer():
    document = {"tasks": {"a/b": {"pf": float("nan"), "ok": 0.5, "ci": (np.float32(np.inf), -math.inf)}},
                "n": np.int64(3), "m~": [1.0, np.float64("nan")]}
    data = load_strict_json(strict_json.dumps(document))
    assert data["tasks"]["a/b"] == {"pf": None, "ok": 0.5, "ci": [None, None]} and data["n"] == 3
    assert data["non_finite"] == {"/tasks/a~1b/pf": "NaN", "/tasks/a~1b/ci/0": "Infinity",
                                  "/tasks/a~1b/ci/1": "-Infinity", "/m~0/1": "NaN"}
    assert math.isnan(document["tasks"]["a/b"]["pf"])  # the caller's document is left as it was


def test_a_finite_document_gets_no_map_and_unknown_objects_their_str():
    class Thing:
        def __str__(self):
            return "thing"
    data = load_strict_json(strict_json.dumps({"x": 1, "y": Thing()}))
    assert data == {"x": 1, "y": "thing"}


def test_the_check_this_suite_applies_rejects_bare_nan():
    with pytest.raises(ValueError, match="NaN"):
        load_strict_json(json.dumps({"x": float("nan")}))


def test_a_run_with_an_undefined_metric_writes_null_and_its_pointer(tmp_path):
    from helpers import copy_builtin_spec

    from mepbench.backends.scripted import ScriptedBackend
    from mepbench.run_dir import load_run
    from mepbench.results import write_run
    from mepbench.runner import EvalConfig, run_eval

    specs = copy_builtin_spec(tmp_path / "specs", "mini", n=3)
    config = EvalConfig(tasks=["mini"], include_paths=[specs], cache_dir=tmp_path / "cache", bootstrap=50)
    out = run_eval(config, backend=ScriptedBackend())
    accuracy = out.tasks["mini"]["variants"]["full"]["metrics"]["accuracy"]
    accuracy["value"] = float("nan")  # what a metric with no scorable sample holds
    returned = write_run(out, config, tmp_path / "run")
    results = load_strict_json((tmp_path / "run" / "results.json").read_text())
    assert results["tasks"]["mini"]["variants"]["full"]["metrics"]["accuracy"]["value"] is None
    assert results["non_finite"] == {"/tasks/mini/variants/full/metrics/accuracy/value": "NaN"}
    assert results["schema_version"] == 3 and math.isnan(returned["tasks"]["mini"]["variants"]["full"]
                                                         ["metrics"]["accuracy"]["value"])
    typed = load_run(tmp_path / "run").result
    assert typed.non_finite == results["non_finite"] and typed.tasks["mini"].primary().value is None
