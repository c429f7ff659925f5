"""The replay backend on every format, on AffectGPT's released answers, and through the runner."""

import json

import numpy as np
import pandas as pd
import pytest

from conftest import shared_fixture
from helpers import write_spec
from mepbench.backends import create_backend
from mepbench.backends.replay import load_outputs
from mepbench.runner import EvalConfig, run_eval
from mepbench.types import Message, Request, TextPart

AFFECTGPT = ("mer_unibench", "AffectGPT", "output", "results-mer2023",
             "emercoarse_highlevelfilter4_outputhybird_bestsetup_bestfusion_lz_20250110100")


def _ask(backend, sample_id, variant="full"):
    request = Request((Message("user", (TextPart("q"),)),), sample_id=sample_id, variant=variant)
    return backend.generate([request])[0]


def test_formats_agree(tmp_path):
    rows = [{"id": "a", "response": "<answer>happy</answer>"}, {"id": "b", "response": "<answer>sad</answer>"}]
    (tmp_path / "r.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    pd.DataFrame(rows).to_csv(tmp_path / "r.csv", index=False)
    pd.DataFrame(rows).to_parquet(tmp_path / "r.parquet")
    (tmp_path / "r.json").write_text(json.dumps({r["id"]: r["response"] for r in rows}))
    np.savez(tmp_path / "r.npz", filenames=np.array(["a", "b"]), fileitems=np.array([r["response"] for r in rows]))
    maps = [load_outputs(tmp_path / f"r.{ext}") for ext in ("jsonl", "csv", "parquet", "json", "npz")]
    assert all(m == maps[0] for m in maps) and maps[0][("b", "")] == "<answer>sad</answer>"


def test_variant_keyed_outputs_and_full_only_fallback(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({"sample_id": "a", "variant": "mask:video", "text": "masked"}) + "\n"
                    + json.dumps({"sample_id": "b", "text": "full-only"}) + "\n")
    backend = create_backend("replay", str(path))
    assert _ask(backend, "a", "mask:video").text == "masked"
    assert _ask(backend, "b", "full").text == "full-only"
    masked = _ask(backend, "b", "mask:audio")
    assert not masked.ok and "'b'" in masked.error and "mask:audio" in masked.error and str(path) in masked.error


def test_bad_files_give_clear_errors(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"name": "a", "output_text": "x"}) + "\n")
    with pytest.raises(ValueError, match="bad.jsonl: need an id/sample_id column"):
        load_outputs(bad)
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        load_outputs(tmp_path / "nope.csv")


def test_affectgpt_released_answers_need_pickle_opt_in():
    path = shared_fixture(*AFFECTGPT, "checkpoint_000030_loss_0.602.npz")
    with pytest.raises(ValueError, match="pickled objects; opt in with --model-arg allow_pickle=true"):
        load_outputs(path)
    backend = create_backend("replay", str(path), allow_pickle=True)
    assert len(backend.outputs) == 411
    assert _ask(backend, "sample_00001998").text == "The character's emotional state is concerned, stressed, anxious."
    openset = load_outputs(shared_fixture(*AFFECTGPT, "checkpoint_000030_loss_0.602-openset.npz"))
    assert openset[("sample_00003564", "")] == "[happy, comforting, supportive]"


def test_replayed_answers_scored_by_the_runner(tmp_path):
    answers = shared_fixture(*AFFECTGPT, "checkpoint_000060_loss_0.480.npz")
    mapping = load_outputs(answers, allow_pickle=True)
    ids = sorted(k for k, _ in mapping)[:40]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps({"id": i, "subtitle": "", "label": "happy"}) + "\n" for i in ids))
    specs = tmp_path / "specs"
    write_spec(specs, "replayed", {"loader": "manifest", "path": str(manifest)}, variants=["full"],
               prompt={"user": "emotion_user.jinja", "media": []})
    config = EvalConfig(model=str(answers), backend="replay", tasks=["replayed"], include_paths=[specs],
                        model_args={"allow_pickle": True}, cache_dir=tmp_path / "cache", bootstrap=100)
    out = run_eval(config)
    assert out.stats["failed"] == 0 and out.stats["cache_hits"] == 0 and len(out.rows) == 40
    happy = sum("happy" in mapping[(i, "")].lower().replace("unhappy", "") for i in ids)
    acc = out.tasks["replayed"]["variants"]["full"]["metrics"]["accuracy"]["value"]
    assert acc * 40 == pytest.approx(sum(r["pred"] == "happy" for r in out.rows)) and happy > 0
