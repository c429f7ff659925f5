"""vLLM request construction per model family, without vLLM: prompt placeholders, `multi_modal_data` keys and
shapes, per-prompt limits, blank media, sampling settings, options and fingerprints (the engine-side checks
are in test_vllm_backend.py)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys

import numpy as np
import pytest
from test_hf_backend import write_mp4

from mepbench.backends.adapters import QwenAudioAdapter, QwenOmniAdapter, QwenVLAdapter, TextAdapter
from mepbench.backends.vllm import VLLMOptions, vllm_fingerprint
from mepbench.backends.vllm_inputs import (EnginePrompt, build_engine_prompt, load_adapter, media_limits,
                                           placeholder_tokens, sampling_kwargs)
from mepbench.media import MediaError, decode_audio, file_hash
from mepbench.models.tiny_omni import ensure_tiny_omni
from mepbench.models.tiny_text import build_tiny_text, ensure_tiny_text
from mepbench.types import AudioPart, GenerationParams, ImagePart, Message, Modality, Request, TextPart, VideoPart

# Chat templates laid out as each family's own: Qwen2-Audio numbers its audio clips, Qwen2.5-VL wraps
# <|video_pad|> / <|image_pad|> in vision start/end tokens.
AUDIO_TEMPLATE = (
    "{% set n = namespace(audio=0) %}{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'audio' %}{% set n.audio = n.audio + 1 %}"
    "Audio {{ n.audio }}: <|audio_bos|><|AUDIO|><|audio_eos|>\n"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
VL_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
DEFAULT_PARAMS = GenerationParams()
DROPS_VIDEO = VL_TEMPLATE.replace("part['type'] == 'video'", "part['type'] in ('video', 'audio') and false")


def family_tokenizer(tiny_dir, template: str):
    """tiny-omni's vocabulary without its named media tokens (as in the Qwen2-Audio / Qwen2.5-VL repos)."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_file(str(tiny_dir / "tokenizer.json")),
                                  eos_token="<|im_end|>", pad_token="<|endoftext|>", chat_template=template)
    tok.add_special_tokens({"additional_special_tokens": ["<|vision_start|>", "<|vision_end|>", "<|video_pad|>",
                                                         "<|image_pad|>"]})
    return tok


@pytest.fixture(scope="module")
def tiny_dir(session_cache):
    return ensure_tiny_omni(session_cache)


@pytest.fixture(scope="module")
def families(tiny_dir, session_cache):
    return {"omni": load_adapter(tiny_dir, num_frames=4, frame_size=56),
            "audio": QwenAudioAdapter(None, family_tokenizer(tiny_dir, AUDIO_TEMPLATE)),
            "vl": QwenVLAdapter(None, family_tokenizer(tiny_dir, VL_TEMPLATE), num_frames=6, frame_size=84),
            "text": load_adapter(ensure_tiny_text(session_cache))}


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    import soundfile as sf
    from PIL import Image

    root = tmp_path_factory.mktemp("vllm-media")
    sf.write(root / "tone.wav", (0.2 * np.sin(np.arange(12000) / 7)).astype(np.float32), 16000)
    Image.new("RGB", (64, 48), (0, 120, 240)).save(root / "blue.png")
    (root / "corrupt.mp4").write_bytes(b"\x00" * 512)
    return {"clip": str(write_mp4(root / "clip.mp4", 0)), "wav": str(root / "tone.wav"),
            "png": str(root / "blue.png"), "corrupt": str(root / "corrupt.mp4"), "missing": str(root / "gone.wav")}


def ask(*parts, params=DEFAULT_PARAMS, **kwargs) -> Request:
    return Request(messages=(Message("system", (TextPart("You judge emotions."),)), Message("user", tuple(parts))),
                   params=params, **kwargs)


def build(adapter, request, limit=None) -> EnginePrompt:
    return build_engine_prompt(adapter, request, media_limits(type(adapter), limit))


# -- families ---------------------------------------------------------------------------------------------------


def test_omni_thinker_prompt_and_media(families, media):
    adapter = families["omni"]
    assert isinstance(adapter, QwenOmniAdapter)
    built = build(adapter, ask(VideoPart(media["clip"]), AudioPart(media["clip"]), TextPart("Which emotion?")))
    video_at = built.prompt.index("<|vision_bos|><|VIDEO|><|vision_eos|>")
    assert video_at < built.prompt.index("<|audio_bos|><|AUDIO|><|audio_eos|>") < built.prompt.index("Which emotion?")
    assert built.prompt.endswith("<|im_start|>assistant\n")
    assert sorted(built.multi_modal_data) == ["audio", "video"]
    (frames,), ((wave, rate),) = built.multi_modal_data["video"], built.multi_modal_data["audio"]
    assert frames.shape == (4, 56, 56, 3) and frames.dtype == np.uint8 and frames.any()
    assert rate == 16000 and wave.dtype == np.float32 and wave.ndim == 1
    np.testing.assert_array_equal(wave, decode_audio(media["clip"]))
    assert built.as_vllm() == {"prompt": built.prompt, "multi_modal_data": built.multi_modal_data}
    image = build(adapter, ask(ImagePart(media["png"]), TextPart("x"))).multi_modal_data["image"][0]
    assert image.size == (64, 48) and image.mode == "RGB"


def test_qwen2_audio_numbers_clips_and_takes_audio_only(families, media):
    adapter = families["audio"]
    built = build(adapter, ask(AudioPart(media["wav"]), AudioPart(media["clip"]), TextPart("Compare.")), limit=2)
    assert "Audio 1: <|audio_bos|><|AUDIO|><|audio_eos|>\nAudio 2: <|audio_bos|><|AUDIO|><|audio_eos|>" in built.prompt
    assert list(built.multi_modal_data) == ["audio"] and len(built.multi_modal_data["audio"]) == 2
    assert [len(w) for w, _ in built.multi_modal_data["audio"]] == [12000, len(decode_audio(media["clip"]))]
    with pytest.raises(ValueError, match="cannot take video"):
        build(adapter, ask(VideoPart(media["clip"]), TextPart("x")))


def test_qwen2_5_vl_video_and_image_pads(families, media):
    adapter = families["vl"]
    built = build(adapter, ask(VideoPart(media["clip"]), ImagePart(media["png"]), TextPart("Emotion?")))
    assert "<|vision_start|><|video_pad|><|vision_end|><|vision_start|><|image_pad|><|vision_end|>" in built.prompt
    assert built.multi_modal_data["video"][0].shape == (6, 84, 84, 3)
    assert built.multi_modal_data["image"][0].size == (64, 48)
    with pytest.raises(ValueError, match="cannot take audio"):
        build(adapter, ask(AudioPart(media["wav"]), TextPart("x")))


def test_text_model_prompt_is_the_chat_template_alone(families):
    adapter = families["text"]
    assert isinstance(adapter, TextAdapter) and placeholder_tokens(adapter) == {}
    built = build(adapter, ask(TextPart("Is the person happy?")))
    assert built.as_vllm() == {"prompt": "<|im_start|>system\nYou judge emotions.<|im_end|>\n<|im_start|>user\n"
                                         "Is the person happy?<|im_end|>\n<|im_start|>assistant\n"}


def test_placeholders_follow_the_tokenizer_names_else_family_defaults(families):
    assert placeholder_tokens(families["omni"]) == {"video": "<|VIDEO|>", "audio": "<|AUDIO|>", "image": "<|IMAGE|>"}
    assert placeholder_tokens(families["vl"]) == {"video": "<|video_pad|>", "image": "<|image_pad|>"}
    assert placeholder_tokens(families["audio"]) == {"audio": "<|AUDIO|>"}


def test_a_template_that_drops_media_is_caught(tiny_dir, media):
    adapter = QwenVLAdapter(None, family_tokenizer(tiny_dir, DROPS_VIDEO))
    with pytest.raises(ValueError, match=r"rendered 0 <\|video_pad\|> placeholder\(s\) for 1 video part"):
        build(adapter, ask(VideoPart(media["clip"]), TextPart("x")))


# -- limits, masks, errors ------------------------------------------------------------------------------------------


def test_media_limits_per_family():
    assert media_limits(QwenOmniAdapter) == {"audio": 1, "image": 1, "video": 1}
    assert media_limits(QwenAudioAdapter, 3) == {"audio": 3}
    assert media_limits(QwenVLAdapter, {"video": 2}) == {"image": 1, "video": 2}
    assert media_limits(TextAdapter) == {}
    with pytest.raises(ValueError, match="takes no 'audio'"):
        media_limits(QwenVLAdapter, {"audio": 1})


def test_requests_over_the_limit_fail(families, media):
    request = ask(VideoPart(media["clip"]), VideoPart(media["clip"]), TextPart("x"))
    with pytest.raises(ValueError, match="2 video parts exceed limit_mm_per_prompt video=1"):
        build(families["omni"], request)
    assert len(build(families["omni"], request, limit={"video": 2}).multi_modal_data["video"]) == 2


def test_blank_media_are_black_frames_and_silence_with_the_same_prompt(families, media):
    adapter = families["omni"]
    plain = build(adapter, ask(VideoPart(media["clip"]), AudioPart(media["wav"]), TextPart("x")))
    blank_parts = (VideoPart(media["clip"], blank=True), AudioPart(media["wav"], blank=True), TextPart("x"))
    blank = build(adapter, ask(*blank_parts))
    assert blank.prompt == plain.prompt
    frames, (wave, rate) = blank.multi_modal_data["video"][0], blank.multi_modal_data["audio"][0]
    assert frames.shape == (4, 56, 56, 3) and not frames.any()
    assert wave.shape == plain.multi_modal_data["audio"][0][0].shape and not wave.any() and rate == 16000


def test_zero_features_and_bad_media_raise(families, media):
    with pytest.raises(ValueError, match="zero-features masking is not supported by the vllm backend"):
        build(families["omni"], ask(TextPart("x"), zero_features=frozenset({Modality.VIDEO})))
    with pytest.raises(MediaError, match="corrupt.mp4"):
        build(families["omni"], ask(VideoPart(media["corrupt"]), TextPart("x")))
    with pytest.raises(MediaError, match="gone.wav"):
        build(families["audio"], ask(AudioPart(media["missing"], blank=True), TextPart("x")))
    with pytest.raises(ValueError, match="cannot take video"):
        build(families["text"], ask(VideoPart(media["clip"]), TextPart("x")))


# -- sampling, options, fingerprint -----------------------------------------------------------------------------------


def test_sampling_kwargs_map_generation_params(families):
    suppress = families["omni"].suppress_token_ids()
    greedy = sampling_kwargs(GenerationParams(max_new_tokens=9, seed=4), suppress)
    assert greedy == {"max_tokens": 9, "temperature": 0.0, "top_p": 1.0, "logit_bias": {i: -100.0 for i in suppress}}
    sampled = sampling_kwargs(GenerationParams(max_new_tokens=5, temperature=0.7, top_p=0.8, seed=11), [])
    assert sampled == {"max_tokens": 5, "temperature": 0.7, "top_p": 0.8, "seed": 11}
    assert len(suppress) == 7  # tiny-omni's seven media marker tokens


def test_options_split_known_fields_from_engine_args(tiny_dir):
    options = VLLMOptions.parse({"tensor_parallel_size": 2, "data_parallel_size": 2, "max_num_seqs": 64,
                                 "quantization": "fp8", "dtype": "bfloat16"})
    assert options.engine == {"max_num_seqs": 64, "quantization": "fp8"}
    args = options.engine_args(tiny_dir, {"video": 1})
    assert args["tensor_parallel_size"] == 2 and args["data_parallel_size"] == 2 and args["max_num_seqs"] == 64
    assert args["limit_mm_per_prompt"] == {"video": 1} and args["enable_prefix_caching"] is True
    plain = VLLMOptions().engine_args(tiny_dir, {})
    assert "data_parallel_size" not in plain and "limit_mm_per_prompt" not in plain and "max_model_len" not in plain


def test_fingerprint_tracks_weights_and_output_options_not_placement(session_cache, tmp_path):
    from mepbench.backends.hf import HFBackend

    model = ensure_tiny_text(session_cache)
    base = vllm_fingerprint(model, VLLMOptions())
    copy = tmp_path / "copy"
    shutil.copytree(model, copy)
    assert vllm_fingerprint(copy, VLLMOptions()) == base
    for placement in ({"tensor_parallel_size": 4}, {"data_parallel_size": 8}, {"gpu_memory_utilization": 0.5},
                      {"max_num_seqs": 16}, {"enforce_eager": True}, {"limit_mm_per_prompt": 3},
                      {"distributed_executor_backend": "ray"}):
        assert vllm_fingerprint(model, VLLMOptions.parse(placement)) == base, placement
    for output in ({"dtype": "bfloat16"}, {"num_frames": 16}, {"max_model_len": 512}, {"quantization": "fp8"}):
        assert vllm_fingerprint(model, VLLMOptions.parse(output)) != base, output
    shutil.copy(build_tiny_text(tmp_path / "seed1", seed=1) / "model.safetensors", copy / "model.safetensors")
    assert vllm_fingerprint(copy, VLLMOptions()) != base
    assert base != HFBackend(str(model)).fingerprint()
    assert vllm_fingerprint(model, VLLMOptions(), hub_id="org/m", revision="abc") != base


def test_vllm_is_imported_only_when_an_engine_starts(session_cache):
    import mepbench.backends.vllm  # noqa: F401
    from mepbench.backends import create_backend

    assert "vllm" not in sys.modules
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here; the missing-vLLM message is checked where it is not")
    with pytest.raises(ImportError, match="setup-vllm-venv.sh"):
        create_backend("vllm", str(ensure_tiny_text(session_cache)))


def test_tiny_text_model_is_deterministic_idempotent_and_vllm_sized(session_cache, tmp_path):
    model = ensure_tiny_text(session_cache)
    config = json.loads((model / "config.json").read_text())
    assert config["model_type"] == "qwen2" and config["hidden_size"] // config["num_attention_heads"] == 64
    mtime = (model / "model.safetensors").stat().st_mtime_ns
    assert ensure_tiny_text(session_cache) == model and (model / "model.safetensors").stat().st_mtime_ns == mtime
    again = build_tiny_text(tmp_path / "again")
    assert all(file_hash(again / f) == file_hash(model / f) for f in ("model.safetensors", "tokenizer.json"))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    (again / "tokenizer.json").unlink()
    assert file_hash(build_tiny_text(again) / "model.safetensors") == file_hash(model / "model.safetensors")
    assert "randomly initialised" in (model / "README.md").read_text()
