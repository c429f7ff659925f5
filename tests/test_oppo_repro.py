"""The mini OPPO reproduction: probe rows for SFT, its config and stage arguments, the seed statistics and table, and
one real end-to-end run of `oppo-train repro` at a toy budget (resumed as a no-op)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

from mepbench.report.seeds import write_seed_board
from mepbench.types import Sample
from oppo_train.config import ConfigError, DataConfig, load_config
from oppo_train.data import (
    DataError,
    build_request,
    describe_rows,
    probe_rows,
    prompt_task,
    select_decided,
    sft_target,
)
from oppo_train.repro import Experiment, ReproConfig, check, overrides
from oppo_train.repro_table import (
    across_seeds,
    markdown_table,
    seed_board,
    seed_seconds,
    summarise,
)


def _clip(cid: str, video: list[str], audio: list[str]) -> Sample:
    return Sample(id=cid, video="v.mp4", audio="a.wav", subtitle="Hi.", label="happy",
                  reasoning="<think>x</think><answer>happy</answer>", cues={"video": video, "audio": audio})


def test_probe_rows_are_balanced_yes_no_within_each_modality():
    clips = [_clip("a", ["smiling mouth"], ["high pitch", "loud voice"]), _clip("b", ["tears"], []),
             _clip("c", [], ["sigh"]), _clip("d", [], [])]
    rows = probe_rows(clips, per_clip=4, seed=0)
    assert probe_rows(clips, per_clip=0, seed=0) == [] and probe_rows([], per_clip=4, seed=0) == []
    assert rows == probe_rows(clips, per_clip=4, seed=0) and rows != probe_rows(clips, per_clip=4, seed=1)
    assert len(rows) == 16
    by_clip = {c.id: c for c in clips}
    for modality in ("video", "audio"):
        asked = [r for r in rows if r.metadata["probe"]["modality"] == modality]
        assert [r.reasoning for r in asked].count("yes") == [r.reasoning for r in asked].count("no") == 4
    for row in rows:
        clip = by_clip[row.id.split("#")[0]]
        probe = row.metadata["probe"]
        present = probe["cue"] in clip.cues[probe["modality"]]
        assert row.reasoning == ("yes" if present else "no") and sft_target(row) == row.reasoning
        assert (row.video, row.audio, row.label) == (clip.video, clip.audio, clip.label)
    # a clip without a cue of a modality is only ever asked "no" about it, with a cue seen on another clip
    asked_b = [r for r in rows if r.id.startswith("b#") and r.metadata["probe"]["modality"] == "audio"]
    assert all(r.reasoning == "no" and r.metadata["probe"]["cue"] in {"high pitch", "loud voice", "sigh"}
               for r in asked_b)


def test_probe_rows_take_negatives_from_the_absent_list_where_the_clip_has_one():
    clip = dataclasses.replace(_clip("a", ["smiling mouth"], ["sigh"]),
                               absent={"video": ["tears"], "audio": ["loud voice"]})
    rows = probe_rows([clip, _clip("b", ["frowning mouth"], ["trembling voice"])], per_clip=8, seed=3)
    negatives = {(r.metadata["probe"]["modality"], r.metadata["probe"]["cue"]) for r in rows
                 if r.id.startswith("a#") and r.reasoning == "no"}
    assert negatives and negatives <= {("video", "tears"), ("audio", "loud voice")}


def test_describe_rows_answer_with_the_reference_sentence_of_one_modality(session_cache):
    from mepbench.synth.cues import describe

    clips = [_clip(f"c{i}", ["smiling mouth", "wide eyes"], ["high pitch"]) for i in range(40)]
    rows = describe_rows(clips, share=0.5, seed=0)
    assert describe_rows(clips, share=0.0, seed=0) == [] and rows == describe_rows(clips, share=0.5, seed=0)
    described = {r.id.split("#")[0] for r in rows}
    assert 10 <= len(described) <= 30 and len(rows) == 2 * len(described)
    video = next(r for r in rows if r.metadata["describe"] == "video")
    assert sft_target(video) == describe("video", ["smiling mouth", "wide eyes"]) + "."
    assert "smiling mouth" in sft_target(video) and "high pitch" not in sft_target(video)
    request = build_request(prompt_task(DataConfig(), session_cache), video)
    text = " ".join(p.text for m in request.messages for p in m.content if getattr(p, "type", "") == "text")
    assert "what the face in the video shows" in text
    assert request.variant == "full" and {p.type for p in request.messages[-1].content} >= {"video", "audio"}


def test_select_decided_sets_the_share_of_clips_one_modality_decides():
    pool = [dataclasses.replace(_clip(f"c{i:02d}", [], []), metadata={"decided_by": "video" if i % 5 == 0 else None})
            for i in range(60)]
    chosen = select_decided(pool, 20, {"video": 0.5})
    assert len(chosen) == 20 and sum(s.metadata["decided_by"] == "video" for s in chosen) == 10
    assert [s.id for s in chosen] == sorted(s.id for s in chosen)
    with pytest.raises(DataError, match="only 12 clips decided by video"):
        select_decided(pool, 40, {"video": 0.5})


def test_probe_rows_use_the_harness_probe_prompt_with_full_input(session_cache):
    task = prompt_task(DataConfig(), session_cache)
    row = probe_rows([_clip("a", ["smiling mouth"], [])], per_clip=1, seed=0)[0]
    request = build_request(task, row)
    text = " ".join(p.text for m in request.messages for p in m.content if getattr(p, "type", "") == "text")
    assert "Does the video show" in text and row.metadata["probe"]["cue"] in text
    assert request.variant == "full" and {p.type for p in request.messages[-1].content} >= {"video", "audio"}


def test_stage_overrides_and_guards():
    assert overrides({"lr": 1e-3, "model": {"freeze_encoders": False}, "seeds": [0, 1]}) == [
        "lr=0.001", "model.freeze_encoders=false", "seeds=[0, 1]"]
    config = load_config(ReproConfig, None, ["sft.max_steps=3", "sft.model.freeze_encoders=false", "seeds=[0,2]"])
    assert config.sft == {"max_steps": 3, "model": {"freeze_encoders": False}} and config.seeds == [0, 2]
    with pytest.raises(ConfigError, match="overlap"):
        check(ReproConfig(train_seed=0), eval_seed=0)
    with pytest.raises(ConfigError, match="unknown variants"):
        check(ReproConfig(variants=["oppo", "ppo"]), eval_seed=0)
    check(ReproConfig(variants=["papo", "papo_dual", "romni_papo", "oppo_rho0", "oppo_shuffled"]), eval_seed=0)


def test_seed_statistics_and_table():
    cell = across_seeds([0.2, 0.4, 0.6])
    assert cell["mean"] == pytest.approx(0.4)
    assert cell["ci_high"] - cell["mean"] == pytest.approx(4.302653 * 0.2 / 3 ** 0.5, rel=1e-5)
    assert across_seeds([0.5])["ci_low"] is None
    one = {"values": {"accuracy": 0.5, "util_v": None}, "ci": {"accuracy": (0.4, 0.6), "util_v": None}}
    summary = summarise({0: {"sft": one}})
    assert summary["sft"]["accuracy"] == {"mean": 0.5, "ci_low": 0.4, "ci_high": 0.6, "n_seeds": 1,
                                          "ci_kind": "bootstrap over clips"} and summary["sft"]["util_v"] is None
    table = markdown_table(summary).splitlines()
    assert table[0].startswith("| model | Acc | Util V |") and table[2].startswith("| SFT only | 50.0 [40.0, 60.0] | — |")
    assert "| PF@V | Acc@V | TPR V | TNR-abs V | PF@A | Acc@A | TPR A | TNR-abs A |" in table[0]
    assert seed_seconds({"seed-0/sft": 10.0, "seed-0/rl-oppo": 5.0, "seed-1/sft": 7.5}) == {"seed-0": 15.0,
                                                                                            "seed-1": 7.5}


def two_seeds() -> dict[int, dict[str, dict]]:
    """Two seeds of two rows: accuracy 0.5 / 0.7 and 0.6 / 0.6; util_v known only for the oppo row."""
    def run(acc, util_v):
        return {"values": {"accuracy": acc, "util_v": util_v}, "ci": {}}
    return {0: {"sft": run(0.5, None), "oppo": run(0.6, 0.3)}, 1: {"sft": run(0.7, None), "oppo": run(0.6, 0.5)}}


def test_seed_board_page_shows_means_intervals_and_every_seed(tmp_path):
    per_seed = two_seeds()
    summary = summarise(per_seed)
    board = seed_board(summary, per_seed, {0: "seed-0/index.html", 1: "seed-1/index.html"})
    assert [r.label for r in board.rows] == ["SFT only", "OPPO (R_omni + J_omni)"]
    sft, oppo = board.rows
    assert sft.cells["accuracy"].mean.value == pytest.approx(60.0)
    # mean ± 12.706 x 10 points leaves [0, 100]: the interval stops at the metric's range
    assert (sft.cells["accuracy"].mean.low, sft.cells["accuracy"].mean.high) == (0.0, 100.0)
    assert sft.cells["accuracy"].per_seed == pytest.approx((50.0, 70.0)) and "util_v" not in sft.cells
    assert oppo.cells["accuracy"].mean.low == pytest.approx(60.0)  # no spread, no width
    html = write_seed_board(board, tmp_path / "site" / "index.html").read_text()
    assert "Content-Security-Policy" in html and 'href="seed-1/index.html"' in html
    assert "50.0 / 70.0" in html and "30.0 / 50.0" in html and "Intervals: t over seeds, within the metric&#39;s range." in html
    assert html.count("<tr>") == 3  # header + the two rows


@pytest.mark.slow
def test_repro_end_to_end_at_a_toy_budget(tmp_path, session_cache):
    args = [sys.executable, "-m", "oppo_train.cli", "repro", "--config", "mini_repro", "model_size=test",
            "seeds=[0]", "train_n=8", "train_data.pool_n=200", "variants=[oppo]", "sft.max_steps=2",
            "sft.prompts_per_step=4", "sft.checkpoint_every=0", "rl.max_steps=1", "rl.prompts_per_step=2",
            "rl.micro_batch_prompts=2", "rl.max_new_tokens=16", "rl.checkpoint_every=1", "eval_limit=3",
            "align.max_steps=1", "align.prompts_per_step=2", "align.probes_per_clip=1", "align.checkpoint_every=0",
            "align.data.n=8", f"work_dir={tmp_path / 'work'}", f"out_dir={tmp_path / 'lb'}",
            f"cache_dir={session_cache}"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads((tmp_path / "lb" / "results.json").read_text())
    assert set(data["summary"]) == {"sft", "oppo"}
    assert data["summary"]["oppo"]["accuracy"]["n_seeds"] == 1
    stages = data["metadata"]["stages"]
    assert set(stages["seconds"]) == set(stages["commits"]) == {"seed-0/align", "seed-0/sft", "seed-0/rl-oppo",
                                                                "seed-0/eval-sft", "seed-0/eval-oppo"}
    align_argv = json.loads((tmp_path / "work" / "seed-0" / "align" / "DONE").read_text())["argv"]
    assert "reasoning_rows=false" in align_argv and "data.n=8" in align_argv
    sft_argv = json.loads((tmp_path / "work" / "seed-0" / "sft" / "DONE").read_text())["argv"]
    assert {"data.pool_n=200", "data.decided_share.video=0.35", "probes_per_clip=4"} <= set(sft_argv)
    assert f"model.path={tmp_path / 'work' / 'seed-0' / 'align' / 'final'}" in sft_argv
    rl_steps = [json.loads(line) for line in (tmp_path / "work" / "seed-0" / "rl-oppo" / "metrics.jsonl").read_text()
                .splitlines() if '"step"' in line]
    assert rl_steps and all("loss/perception" in step for step in rl_steps if "loss/policy" in step)
    table = (tmp_path / "lb" / "table.md").read_text()
    assert "| SFT only |" in table and "| OPPO (R_omni + J_omni) |" in table
    assert "not run (a row is missing): oppo − baseline, oppo − romni, oppo − oppo_rho0, oppo − oppo_shuffled" in table
    assert data["contrasts"] == [] and len(data["contrasts_not_run"]) == 4
    site = tmp_path / "lb" / "site"
    assert 'href="seed-0/index.html"' in (site / "index.html").read_text()
    assert (site / "seed-0" / "run-eval-oppo.html").is_file()
    again = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "[repro]" not in again.stderr
    rewritten = json.loads((tmp_path / "lb" / "results.json").read_text())["metadata"]
    assert rewritten["stages"] == stages
    assert rewritten["seed_seconds"]["seed-0"] == pytest.approx(sum(stages["seconds"].values()))


def test_train_data_settings_reach_both_stages_and_the_analysis_is_checked():
    common = Experiment(ReproConfig(train_data={"decided_share": {"video": 0.3}, "pool_n": 50}))._common(4)
    assert {"seed=4", "data.decided_share.video=0.3", "data.pool_n=50", "data.n=1000", "data.seed=1"} <= set(common)
    with pytest.raises(ConfigError, match="unknown primary metrics"):
        check(ReproConfig(primary=["accuracy", "util_x"]), eval_seed=0)
    with pytest.raises(ConfigError, match="must each name two rows"):
        check(ReproConfig(contrasts=[["oppo", "ppo"]]), eval_seed=0)


def test_experiment_refuses_train_seed_equal_to_the_eval_suite():
    with pytest.raises(ConfigError, match="overlap"):
        Experiment(ReproConfig(train_seed=0))


def test_an_alignment_stage_trains_on_perception_rows_only():
    from types import SimpleNamespace

    from oppo_train.sft import SFTTrainer

    clips = [_clip(f"c{i}", [["smiling mouth"], ["tears"]][i % 2], [["high pitch"], ["sigh"]][i % 2]) for i in range(6)]

    def rows(**settings):
        config = SimpleNamespace(**{"probes_per_clip": 2, "describe_share": 1.0, "seed": 0, "reasoning_rows": True,
                                    **settings})
        return SFTTrainer.training_rows(SimpleNamespace(config=config), clips)
    full, aligned = rows(), rows(reasoning_rows=False)
    assert len(full) == 6 + 12 + 12 and aligned == full[6:]
    assert all(r.metadata.get("probe") or r.metadata.get("describe") for r in aligned)
    with pytest.raises(ConfigError, match="reasoning_rows=false needs"):
        rows(reasoning_rows=False, probes_per_clip=0, describe_share=0.0)
