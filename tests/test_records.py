"""The typed run directory: samples.parquet with native columns that round-trip through `load_run`, results.json that
validates against its versioned JSON Schema, typed results with every estimate's n and interval method."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import copy_builtin_spec

from mepbench import load_run
from mepbench.backends.scripted import ScriptedBackend
from mepbench.records import SCHEMA_VERSION, MetricValue, RunResult, SampleRecord, results_schema
from mepbench.results import write_run
from mepbench.runner import EvalConfig, run_eval
from mepbench.sample_table import read_samples, sample_table, write_samples


@pytest.fixture(scope="module")
def mep_run(tmp_path_factory):
    """A real run of a small MEP task (probes, cue matches, posters) with two samples failing."""
    root = tmp_path_factory.mktemp("records")
    specs = copy_builtin_spec(root / "specs", "mini-mep", n=5, mep=True)
    config = EvalConfig(model="stub", tasks=["mini-mep"], include_paths=[specs], cache_dir=root / "cache",
                        bootstrap=50)
    backend = ScriptedBackend(answer="<think>She smiles broadly; her voice is bright.</think><answer>happy</answer>",
                              fail_ids="synth-00001")
    output = run_eval(config, backend=backend)
    write_run(output, config, root / "run")
    return root / "run", output


def test_samples_table_has_native_nested_columns_and_plain_labels(mep_run):
    run_dir, _ = mep_run
    schema = pq.read_schema(run_dir / "samples.parquet")
    assert pa.types.is_list(schema.field("prompt").type) and pa.types.is_struct(schema.field("prompt").type.value_type)
    assert pa.types.is_struct(schema.field("scores").type) and pa.types.is_struct(schema.field("media_sha256").type)
    assert pa.types.is_list(schema.field("cue_matches").type) and schema.field("correct").type == pa.bool_()
    recall = schema.field("scores").type.field("recall").type
    assert pa.types.is_struct(recall) and recall.field("video").type == pa.float64()
    frame = load_run(run_dir).samples
    main = frame[frame["kind"] == "main"]
    assert set(main["label"]) <= {"happy", "sad", "angry", "surprised", "fearful", "neutral"}  # not '"happy"'
    assert set(frame["model"]) == {"stub"} and frame["run_id"].nunique() == 1 and len(frame["run_id"].iloc[0]) == 16
    assert frame.groupby("kind").size().to_dict().keys() == {"main", "probe", "control", "negative"}


def test_load_run_round_trips_every_record(mep_run):
    run_dir, output = mep_run
    run = load_run(run_dir)
    records = list(run.records())
    assert len(records) == len(output.rows)
    by_key = {(r.sample_id, r.variant, r.item): r for r in records}
    for row in output.rows:
        record = by_key[(row["sample_id"], row["variant"], row["item"])]
        assert record.error == row["error"] and record.target == row["target"] and record.label == row["label"]
        assert record.response == (row["response"].text if row["response"] else None)
        assert record.correct == row.get("correct") and record.pred == row.get("pred")
        if "recall" in row:
            assert record.scores["recall"] == row["recall"]
            assert [(m.side, m.cue, m.matched) for m in record.cue_matches] == \
                [(m["side"], m["cue"], m["matched"]) for m in row["cue_matches"]]
    failed = [r for r in records if r.error]
    assert failed and {r.sample_id for r in failed} == {"synth-00001"}
    assert {r.error_reason for r in failed} == {"backend_error"}
    full = by_key[("synth-00000", "full", "")]
    assert full.subtitle and full.media.keys() == {"video", "audio"} and full.poster.startswith("posters/")
    assert (run_dir / full.poster).is_file() and full.prompt[-1]["role"] == "user"
    rewritten = run_dir.parent / "copy.parquet"
    write_samples(run.samples.to_dict("records"), rewritten)
    assert read_samples(rewritten).equals(run.samples)


def test_results_document_validates_against_its_schema_and_reads_typed(mep_run):
    import jsonschema

    run_dir, _ = mep_run
    doc = json.loads((run_dir / "results.json").read_text())
    shipped = json.loads((run_dir / "results.schema.json").read_text())
    assert shipped == results_schema() and doc["schema_version"] == SCHEMA_VERSION
    jsonschema.validate(doc, shipped)
    broken = {**doc, "tasks": {"mini-mep": {**doc["tasks"]["mini-mep"], "n_samples": -1}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, shipped)
    result = load_run(run_dir).result
    task = result.tasks["mini-mep"]
    accuracy = task.primary()
    assert accuracy == MetricValue.from_dict(doc["tasks"]["mini-mep"]["variants"]["full"]["metrics"]["accuracy"])
    assert accuracy.n == 5 and accuracy.method == "wilson" and accuracy.warning is None
    assert task.metric("/variants/full/metrics/macro_f1").method in ("bca-bootstrap", "percentile-bootstrap")
    assert "n = 5 < 30" in task.metric("/variants/full/metrics/macro_f1").warning
    assert task.metric("/reliance/mask:video/flip_rate").method == "wilson"
    assert task.metric("/reliance/mask:video/drop/accuracy").method == "paired-percentile-bootstrap"
    assert task.metric("/faithfulness/video/headline").method == "clip-clustered-percentile-bootstrap"
    evals = load_run(run_dir).evals()
    assert evals["primary"].sum() == 1 and (evals["n"].dropna() >= 0).all()
    low, high = evals["ci_low"].dropna(), evals["ci_high"].dropna()
    assert len(low) > 30 and (evals.dropna(subset=["ci_low", "value"]).eval("ci_low <= value <= ci_high")).all()
    assert result.run_id == load_run(run_dir).samples["run_id"].iloc[0] and len(high) == len(low)


def test_other_schema_versions_are_refused_with_the_file_named(mep_run, tmp_path):
    run_dir, _ = mep_run
    doc = json.loads((run_dir / "results.json").read_text())
    with pytest.raises(ValueError, match=r"old/results.json: schema_version 2, this mepbench reads 3"):
        RunResult.from_document({"mepbench_results_version": 2, **{k: v for k, v in doc.items()
                                                                   if k != "schema_version"}}, "old/results.json")
    frame = load_run(run_dir).samples
    table = sample_table(frame.to_dict("records")).replace_schema_metadata({b"mepbench.schema_version": b"2"})
    pq.write_table(table, tmp_path / "samples.parquet")
    with pytest.raises(ValueError, match=r"samples.parquet: samples table of schema 2"):
        read_samples(tmp_path / "samples.parquet")


def test_score_fields_without_one_arrow_type_are_kept_as_json_and_read_back(tmp_path):
    rows = [{"task": "t", "sample_id": "a", "variant": "full", "scores": {"mixed": "text", "empty": {}, "n": 1}},
            {"task": "t", "sample_id": "b", "variant": "full", "scores": {"mixed": 3, "empty": {}, "n": 2.5}},
            {"task": "t", "sample_id": "c", "variant": "full", "scores": None}]
    write_samples(rows, tmp_path / "samples.parquet")
    meta = pq.read_schema(tmp_path / "samples.parquet").metadata
    assert json.loads(meta[b"mepbench.json_fields"]) == ["scores.mixed", "scores.empty"]
    frame = read_samples(tmp_path / "samples.parquet")
    assert list(frame["scores"]) == [{"mixed": "text", "empty": {}, "n": 1.0}, {"mixed": 3, "empty": {}, "n": 2.5}, {}]
    record = SampleRecord.from_row(frame.iloc[1].to_dict())
    assert record.scores["mixed"] == 3 and record.kind == "main"
