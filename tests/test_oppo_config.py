"""Config files and overrides, the CLI, shipped presets, and the data loaders (incl. the authors' record schema)."""

from __future__ import annotations

import json

import pytest
from conftest import shared_fixture

from mepbench.types import Sample
from oppo_train.cli import main, preset_dir, resolve_config_path
from oppo_train.config import ConfigError, DataConfig, RLConfig, SFTConfig, load_config, to_dict
from oppo_train.data import DataError, load_csv, load_records, sft_target, step_indices
from oppo_train.repro import ReproConfig


def test_paper_defaults():
    c = load_config(RLConfig)
    assert (c.rewards.alpha, c.perception.beta, c.perception.rho, c.rewards.delta) == (0.5, 8e-3, 0.7, 0.5)
    assert (c.num_generations, c.lr, c.clip_eps, c.ref_kl_coef) == (4, 2e-6, 0.2, 0.04)
    assert (c.perception.estimator, c.perception.entropy_coef, c.scale_rewards) == ("exact", 3e-4, "none")
    assert (c.variant, c.strategy.name, c.cue_rewards, c.strategy.swapped) == ("oppo", "oppo", True, False)
    assert (SFTConfig().lr, SFTConfig().num_epochs) == (2e-5, 2)


@pytest.mark.parametrize("variant, mode, cues, beta, rho, estimator, eta, mask", [
    ("papo", "papo", False, 0.02, 0.6, "k3", 0.05, "patch"),        # PAPO v5 Table 6, PAPO_G-7B
    ("papo_dual", "papo_dual", False, 0.02, 0.6, "k3", 0.05, "patch"),
    ("romni_papo", "papo", True, 8e-3, 0.7, "exact", 3e-4, "element"),
    ("romni_papo_dual", "papo_dual", True, 8e-3, 0.7, "exact", 3e-4, "element"),
    ("oppo_rho0", "oppo", True, 8e-3, 0.0, "exact", 3e-4, "element"),
    ("oppo_shuffled", "oppo_swapped", True, 8e-3, 0.7, "exact", 3e-4, "element"),
    ("baseline", "none", False, 0.0, 0.0, "exact", 0.0, "element"),
])
def test_variant_defaults(variant, mode, cues, beta, rho, estimator, eta, mask):
    c = load_config(RLConfig, None, [f"variant={variant}"])
    p = c.perception
    assert (c.strategy.name, c.cue_rewards) == (mode, cues)
    assert (p.beta, p.rho, p.estimator, p.entropy_coef, p.mask) == (beta, rho, estimator, eta, mask)


def test_explicit_perception_settings_win_over_the_variant_and_k1_is_renamed():
    c = load_config(RLConfig, None, ["variant=papo", "perception.rho=0.3", "perception.estimator=exact"])
    assert (c.perception.rho, c.perception.estimator, c.perception.beta) == (0.3, "exact", 0.02)
    with pytest.raises(ConfigError, match="k1 is now k1_authors: its gradient does not depend on the masked input"):
        load_config(RLConfig, None, ["perception.estimator=k1"])
    assert load_config(RLConfig, None, ["perception.estimator=k1_authors"]).perception.estimator == "k1_authors"


def test_file_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("variant: papo\nperception: {beta: 0.03}\nmodel:\n  path: /m\n")
    c = load_config(RLConfig, path, ["perception.rho=0.5", "lr=1e-5", "rewards.weights={accuracy: 1, x: 2}",
                                     "ref_kl_final=null", "max_steps=3"])
    assert (c.variant, c.strategy.name, c.perception.beta, c.perception.rho) == ("papo", "papo", 0.03, 0.5)
    assert c.lr == 1e-5 and isinstance(c.lr, float) and c.max_steps == 3 and c.ref_kl_final is None
    assert c.rewards.weights == {"accuracy": 1, "x": 2} and c.model.path == "/m"


@pytest.mark.parametrize("override,message", [
    ("perception.betta=1", "unknown key 'perception.betta'"),
    ("variant=ppo", "variant must be one of"),
    ("max_steps=1.5", "not a valid"),
    ("lr=fast", "not a valid"),
    ("model=3", "is a section"),
    ("lr.x=1", "not a section"),
    ("novalue", "not key=value"),
    ("perception.rho=1.5", "rho must be in"),
    ("perception.mask=pixels", "perception.mask must be one of"),
    ("num_generations=1", "must be >= 2"),
])
def test_bad_overrides_are_named(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(RLConfig, None, [override])


def test_shipped_presets_load():
    names = sorted(p.stem for p in preset_dir().glob("*.yaml"))
    assert {"rl_paper", "rl_tiny", "sft_paper", "sft_tiny", "rl_code_weights"} <= set(names)
    for name in names:
        cls = ReproConfig if name == "mini_repro" else SFTConfig if name.startswith("sft") else RLConfig
        load_config(cls, resolve_config_path(name))
    paper = load_config(RLConfig, resolve_config_path("rl_paper"))
    assert paper.model.dtype == "bfloat16" and paper.rewards.embedder == "Qwen/Qwen3-Embedding-0.6B"
    assert {p.name for p in (preset_dir() / "accelerate").glob("*.yaml")} == {"cpu_ddp.yaml", "fsdp2.yaml",
                                                                              "zero3.yaml"}


def test_cli_prints_config_and_rejects_bad_keys(capsys):
    main(["rl", "--config", "rl_tiny", "variant=papo_dual", "--print-config"])
    out = capsys.readouterr().out
    assert "variant: papo_dual" in out and "beta: 0.02" in out and "estimator: k3" in out
    with pytest.raises(SystemExit) as exit_info:
        main(["sft", "variant=oppo"])
    assert exit_info.value.code == 2 and "unknown key 'variant'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["rl", "--config", "no-such-preset"])
    assert "shipped presets" in capsys.readouterr().err


def test_to_dict_round_trips():
    c = load_config(RLConfig, None, ["variant=baseline"])
    assert load_config(RLConfig, None, [f"{k}={json.dumps(v)}" for k, v in to_dict(c).items()]) == c


def test_step_order_is_a_function_of_the_step():
    first = [step_indices(10, s, 4, seed=0) for s in range(5)]
    assert sorted(first[0] + first[1] + first[2][:2]) == list(range(10))  # epoch 0 is a permutation
    assert first == [step_indices(10, s, 4, seed=0) for s in range(5)]
    assert first != [step_indices(10, s, 4, seed=1) for s in range(5)]


def test_authors_records_schema_read_in_place():
    path = shared_fixture("oppo", "affect_r1", "extracted_data_step_2300_2620.jsonl")
    samples = load_records(path, require_media=False, limit=50)
    assert len(samples) == 50
    first = samples[0]
    assert first.id == "samplenew3_00055008" and first.subtitle.startswith("My father is a sincere general")
    assert first.label == ["sadness", "depression", "melancholy", "concern"]
    assert first.cues == {"video": [], "audio": ["trembling quality", "flat and monotonous tone"],
                          "emotion": ["anxiety", "tension", "sadness", "depression", "melancholy"]}
    assert first.audio.endswith("samplenew3_00055008.wav") and first.metadata["original_index"] == 6
    remapped = load_records(path, media_root="/data/mer2025", require_media=False, limit=1)[0]
    assert remapped.video == "/data/mer2025/samplenew3_00055008.mp4"
    with pytest.raises(DataError, match="video file not found"):
        load_records(path, limit=1)
    with pytest.raises(DataError, match="no reasoning text for SFT"):
        sft_target(first)


def test_csv_loader_with_cue_file(tmp_path):
    (tmp_path / "train.csv").write_text('name,openset,reason,subtitle\nclip1,"[happy, excited]",She smiles.,Hi!\n'
                                        'clip2,[sad],,\n')
    (tmp_path / "cues.jsonl").write_text(json.dumps({"name": "clip1", "visual_clues": ["smiling mouth"],
                                                     "audio_clues": [], "reasoning_emotions": ["happy"]}) + "\n")
    config = DataConfig(source="csv", path=str(tmp_path / "train.csv"), cue_file=str(tmp_path / "cues.jsonl"),
                        require_media=False)
    one, two = load_csv(config)
    assert (one.id, one.label, one.reasoning, one.subtitle) == ("clip1", ["happy", "excited"], "She smiles.", "Hi!")
    assert one.cues == {"video": ["smiling mouth"], "audio": [], "emotion": ["happy"]}
    assert one.video == str(tmp_path / "video" / "clip1.mp4") and two.cues == {} and two.subtitle is None
    assert sft_target(one) == "<think>She smiles.</think><answer>happy, excited</answer>"
    synth = Sample(id="s", reasoning="<think>a</think><answer>sad</answer>", label="sad")
    assert sft_target(synth) == synth.reasoning


def test_cli_errors_exit_2_with_one_line(tmp_path, session_cache, capsys):
    common = ["--config", "rl_tiny", "data.n=4", f"cache_dir={session_cache}", f"output_dir={tmp_path}"]
    with pytest.raises(SystemExit) as missing:
        main(["rl", *common, "model.path=/no/such/model"])
    assert missing.value.code == 2 and "model folder not found: /no/such/model" in capsys.readouterr().err
    with pytest.raises(SystemExit) as bad_reward:
        main(["rl", *common, "rewards.extra={x: 'no_such_module:fn'}"])
    assert bad_reward.value.code == 2 and "cannot import 'no_such_module:fn'" in capsys.readouterr().err


def test_each_perception_strategy_picks_its_copies_and_tokens():
    import torch

    from oppo_train.variants import NONE, OPPO, OPPO_SWAPPED, PAPO, PAPO_DUAL

    completion = torch.tensor([[1, 1, 1, 0]])
    routed = {"video": torch.tensor([[True, False, False, False]]), "audio": torch.tensor([[False, True, True, False]])}
    calls = []

    def routes():
        calls.append(1)
        return routed

    assert (NONE.copies, PAPO.copies) == ((), (("video", "audio"),))
    assert PAPO_DUAL.copies == OPPO.copies == OPPO_SWAPPED.copies == (("video",), ("audio",))
    assert NONE.token_masks(completion, routes) == {}
    papo = PAPO.token_masks(completion, routes)
    assert list(papo) == ["video+audio"] and torch.equal(papo["video+audio"], completion.bool())
    assert set(PAPO_DUAL.token_masks(completion, routes)) == {"video", "audio"} and not calls, "PAPO never routes"
    assert OPPO.token_masks(completion, routes) is routed and len(calls) == 1
    swapped = OPPO_SWAPPED.token_masks(completion, routes)
    assert torch.equal(swapped["video"], routed["audio"]) and torch.equal(swapped["audio"], routed["video"])
