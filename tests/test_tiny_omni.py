"""The tiny random omni model: deterministic build, offline reload, tokenizer and chat template."""

from __future__ import annotations

import numpy as np
import pytest

from mepbench.backends.numpy_video import NumpyVideoProcessor
from mepbench.media import file_hash
from mepbench.models.tiny_omni import build_tiny_omni, ensure_tiny_omni


@pytest.fixture(scope="session")
def tiny_dir(session_cache):
    return ensure_tiny_omni(session_cache)


def test_build_is_deterministic_per_seed(tiny_dir, tmp_path):
    again = build_tiny_omni(tmp_path / "again", seed=0)
    other = build_tiny_omni(tmp_path / "other", seed=1)
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert file_hash(again / name) == file_hash(tiny_dir / name)
    assert file_hash(other / "model.safetensors") != file_hash(tiny_dir / "model.safetensors")
    assert file_hash(other / "tokenizer.json") == file_hash(tiny_dir / "tokenizer.json")


def test_build_is_idempotent_and_leaves_no_temp_dirs(tiny_dir):
    mtime = (tiny_dir / "model.safetensors").stat().st_mtime_ns
    assert build_tiny_omni(tiny_dir, seed=0) == tiny_dir
    assert (tiny_dir / "model.safetensors").stat().st_mtime_ns == mtime
    assert not [p.name for p in tiny_dir.parent.iterdir() if p.name.startswith(".")]


def test_rebuilds_incomplete_or_other_seed(tmp_path):
    out = build_tiny_omni(tmp_path / "m", seed=0)
    weights = file_hash(out / "model.safetensors")
    (out / "tokenizer.json").unlink()
    assert file_hash(build_tiny_omni(out, seed=0) / "model.safetensors") == weights
    assert file_hash(build_tiny_omni(out, seed=3) / "model.safetensors") != weights


def test_ensure_tiny_omni_uses_cache_layout(tiny_dir, session_cache):
    assert tiny_dir == session_cache / "models" / "tiny-omni-random"
    assert "randomly initialised" in (tiny_dir / "README.md").read_text()


def test_reloads_offline_with_named_tokens(tiny_dir):
    import torch
    from transformers import AutoTokenizer, Qwen2_5OmniThinkerForConditionalGeneration

    tok = AutoTokenizer.from_pretrained(tiny_dir, local_files_only=True)
    assert 900 <= len(tok) <= 1000
    assert tok.convert_ids_to_tokens(tok.video_token_id) == "<|VIDEO|>"
    assert tok.audio_token == "<|AUDIO|>" and tok.vision_bos_token == "<|vision_bos|>"
    model = Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(tiny_dir, local_files_only=True)
    assert model.config.video_token_id == tok.video_token_id
    assert model.config.text_config.vocab_size == len(tok)
    ids = torch.tensor([tok("happy sad angry").input_ids])
    with torch.inference_mode():
        a = model(input_ids=ids).logits
        b = Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(tiny_dir)(input_ids=ids).logits
    assert torch.isfinite(a).all() and torch.equal(a, b)


def test_chat_template_renders_media_markers(tiny_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_dir)
    conversation = [
        {"role": "system", "content": "You judge emotions."},
        {"role": "user", "content": [{"type": "video", "video": "a.mp4"}, {"type": "audio", "audio": "a.wav"},
                                     {"type": "image", "image": "a.png"}, {"type": "text", "text": "Emotion?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "<answer>happy</answer>"}]},
    ]
    text = tok.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    assert text == ("<|im_start|>system\nYou judge emotions.<|im_end|>\n"
                    "<|im_start|>user\n<|vision_bos|><|VIDEO|><|vision_eos|><|audio_bos|><|AUDIO|><|audio_eos|>"
                    "<|vision_bos|><|IMAGE|><|vision_eos|>Emotion?<|im_end|>\n"
                    "<|im_start|>assistant\n<answer>happy</answer><|im_end|>\n<|im_start|>assistant\n")
    assert not tok.apply_chat_template(conversation[:1], tokenize=False).endswith("assistant\n")
    assert "Ġfurrowed" in tok.tokenize("the furrowed brows")


def test_numpy_video_processor_matches_qwen_layout(tiny_dir):
    proc = NumpyVideoProcessor.from_pretrained(tiny_dir)
    frames = np.random.RandomState(0).randint(0, 256, (7, 112, 112, 3), dtype=np.uint8)
    out = proc([frames, frames[:4]])
    assert out["video_grid_thw"].tolist() == [[4, 8, 8], [2, 8, 8]]
    assert tuple(out["pixel_values_videos"].shape) == (4 * 64 + 2 * 64, 3 * 2 * 14 * 14)
    assert proc.get_num_of_video_patches(7, 112, 112) == 4 * 64
    # the first row is the top-left 14x14 patch of frames 0 and 1, channel-major
    patch = (frames[:2, :14, :14].astype(np.float32) / 255 - proc.image_mean) / proc.image_std
    expected = patch.transpose(3, 0, 1, 2).reshape(-1)
    np.testing.assert_allclose(out["pixel_values_videos"][0].numpy(), expected, rtol=1e-5, atol=1e-5)
    resized = proc([np.zeros((2, 100, 130, 3), np.uint8)])["video_grid_thw"].tolist()
    assert resized[0][1] % 2 == 0 and resized[0][2] % 2 == 0


def test_repro_size_is_wider_and_keeps_the_tokenizer(tiny_dir, tmp_path):
    import json

    repro = build_tiny_omni(tmp_path / "repro", seed=0, size="repro")
    text = json.loads((repro / "config.json").read_text())["text_config"]
    test = json.loads((tiny_dir / "config.json").read_text())["text_config"]
    assert (text["hidden_size"], text["num_hidden_layers"]) == (128, 3) and test["hidden_size"] == 64
    assert file_hash(repro / "tokenizer.json") == file_hash(tiny_dir / "tokenizer.json")
    with pytest.raises(ValueError, match="unknown tiny-omni size"):
        build_tiny_omni(tmp_path / "x", size="huge")


def test_tokenizer_knows_the_mep_synth_vocabulary(tiny_dir):
    from transformers import AutoTokenizer

    from mepbench.scoring.vocabulary import AUDIO_CUES, VISUAL_CUES

    tok = AutoTokenizer.from_pretrained(tiny_dir, local_files_only=True)
    assert all(len(tok(" " + cue).input_ids) <= 3 for cue in VISUAL_CUES + AUDIO_CUES)


def test_aliases(session_cache, monkeypatch, tmp_path):
    import mepbench.models as models

    assert models.resolve_alias("tiny-omni-random", session_cache) == str(session_cache / "models" / "tiny-omni-random")
    assert models.resolve_alias("/some/folder", session_cache) == "/some/folder"
    monkeypatch.setattr(models, "TRAINED_TINY_OMNI", tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="oppo-train repro"):
        models.resolve_alias("tiny-omni", session_cache)


def test_balanced_build_brings_the_towers_tokens_to_the_text_embedding_scale(tmp_path):
    import torch
    from transformers import Qwen2_5OmniThinkerForConditionalGeneration

    from mepbench.models.tiny_omni import balance_projectors

    plain = Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(build_tiny_omni(tmp_path / "p", seed=0))
    factors = balance_projectors(plain, seed=5)
    assert factors["vision"] < 0.2 and factors["audio"] < 0.5  # the random towers' tokens are far too long
    inner = plain.model
    gen = torch.Generator().manual_seed(9)  # other inputs than the ones the factors were measured on
    grid = torch.tensor([[2, 4, 4]])
    vision = plain.config.vision_config
    pixels = torch.randn(32, 3 * vision.temporal_patch_size * vision.patch_size ** 2, generator=gen)
    with torch.no_grad():
        text = float(inner.get_input_embeddings().weight.norm(dim=1).mean())
        video = torch.cat(inner.get_video_features(pixels, grid, return_dict=True).pooler_output)
    assert 0.5 * text < float(video.norm(dim=-1).mean()) < 2 * text
    balanced = build_tiny_omni(tmp_path / "b", seed=0, balanced=True)
    assert file_hash(balanced / "model.safetensors") != file_hash(tmp_path / "p" / "model.safetensors")
    assert build_tiny_omni(balanced, seed=0, balanced=True) == balanced


def test_init_range_sets_the_initial_weight_scale_and_is_part_of_the_build_stamp(tmp_path):
    import json

    from transformers import Qwen2_5OmniThinkerForConditionalGeneration

    from mepbench.models.build import BUILD_INFO
    from mepbench.models.tiny_omni import INIT_RANGE

    def stds(path):
        model = Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(path)
        return (float(model.get_input_embeddings().weight.detach().std()),
                float(model.model.visual.blocks[0].mlp.gate_proj.weight.detach().std()))

    small = build_tiny_omni(tmp_path / "m", seed=0, init_range=0.02)
    assert all(abs(std - 0.02) < 0.004 for std in stds(small))
    assert json.loads((small / BUILD_INFO).read_text())["version"] == "2-init0.02"
    weights = file_hash(small / "model.safetensors")
    assert build_tiny_omni(small, seed=0, init_range=0.02) == small
    assert file_hash(small / "model.safetensors") == weights  # the complete build is reused
    build_tiny_omni(small, seed=0)  # another init_range is a different build: rebuilt, not reused
    assert file_hash(small / "model.safetensors") != weights
    assert all(abs(std - INIT_RANGE) < 0.04 for std in stds(small))
    with pytest.raises(ValueError, match="init_range"):
        build_tiny_omni(tmp_path / "bad", init_range=0.0)
