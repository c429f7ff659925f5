"""The transformers backend on tiny random models: batching, errors, masks, fingerprints, families."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from mepbench.backends.base import Backend
from mepbench.backends.hf import HFBackend
from mepbench.models.tiny_omni import build_tiny_omni, ensure_tiny_omni
from mepbench.types import AudioPart, GenerationParams, Message, Modality, Request, TextPart, VideoPart

PARAMS = GenerationParams(max_new_tokens=12)


def write_mp4(path: Path, seed: int, frames: int = 16, size: int = 112) -> Path:
    """An h264 + aac clip: moving coloured square over a grey ramp, with a sine tone."""
    import av

    rng = np.random.RandomState(seed)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=8)
        video.width = video.height = size
        video.pix_fmt = "yuv420p"
        audio = container.add_stream("aac", rate=16000)
        audio.layout = "mono"
        for i in range(frames):
            img = np.full((size, size, 3), (i * 15) % 255, np.uint8)
            img[10 + 3 * i:50 + 3 * i, 20:60] = rng.randint(0, 255, 3)
            for packet in video.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        t = np.arange(frames * 2000) / 16000
        wave = (0.3 * np.sin(2 * np.pi * (220 + 110 * seed) * t)).astype(np.float32)
        for start in range(0, len(wave), 1024):
            frame = av.AudioFrame.from_ndarray(wave[None, start:start + 1024], format="flt", layout="mono")
            frame.sample_rate = 16000
            for packet in audio.encode(frame):
                container.mux(packet)
        for packet in audio.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="session")
def tiny_dir(session_cache):
    return ensure_tiny_omni(session_cache)


@pytest.fixture(scope="session")
def media(tmp_path_factory):
    import soundfile as sf

    root = tmp_path_factory.mktemp("media")
    wave = 0.2 * np.sin(2 * np.pi * 330 * np.arange(24000) / 16000)
    sf.write(root / "tone.wav", wave.astype(np.float32), 16000)
    (root / "corrupt.mp4").write_bytes(np.random.RandomState(0).bytes(4096))
    return {"a": str(write_mp4(root / "a.mp4", 0)), "b": str(write_mp4(root / "b.mp4", 1)),
            "wav": str(root / "tone.wav"), "corrupt": str(root / "corrupt.mp4"), "missing": str(root / "gone.wav")}


@pytest.fixture(scope="session")
def backend(tiny_dir):
    return HFBackend(str(tiny_dir), batch_size=8, local_files_only=True)


def ask(*parts, zero=(), params=PARAMS) -> Request:
    return Request(messages=(Message("system", (TextPart("You judge emotions."),)), Message("user", tuple(parts))),
                   params=params, zero_features=frozenset(zero))


def three(media) -> list[Request]:
    return [ask(VideoPart(media["a"]), AudioPart(media["a"]), TextPart("What emotion does the speaker feel?")),
            ask(TextPart("Is the person happy? Answer yes or no.")),
            ask(VideoPart(media["b"]), AudioPart(media["wav"]), TextPart("Describe the cues."))]


def test_backend_protocol_and_capabilities(backend):
    assert isinstance(backend, Backend)
    assert backend.capabilities.modalities == frozenset(Modality)
    assert backend.capabilities.batching and backend.capabilities.feature_masking
    info = backend.describe()
    assert info["model_type"] == "qwen2_5_omni_thinker" and info["params"] > 100_000
    assert info["options"]["num_frames"] == 8 and info["dtype"] == "float32"


def test_text_only_and_omni_requests_generate(backend, media):
    text_only, omni = three(media)[1], three(media)[0]
    for response in backend.generate([text_only, omni]):
        assert response.ok, response.error
        assert response.completion_tokens > 0 and response.prompt_tokens > 0 and response.latency_s > 0
    assert backend.generate([omni])[0].prompt_tokens > backend.generate([text_only])[0].prompt_tokens + 50


def test_batched_greedy_equals_one_at_a_time(backend, media):
    requests = three(media)
    batched = backend.generate(requests)
    alone = [backend.generate([r])[0] for r in requests]
    assert [r.text for r in batched] == [r.text for r in alone]
    assert len({r.text for r in batched}) == 3  # the random model does respond to its inputs
    assert [r.completion_tokens for r in batched] == [r.completion_tokens for r in alone]


def test_mixed_modalities_and_params_keep_order(backend, media):
    short = GenerationParams(max_new_tokens=3)
    requests = [ask(VideoPart(media["a"]), TextPart("Emotion?")), ask(TextPart("Emotion?"), params=short),
                ask(AudioPart(media["wav"]), TextPart("Emotion?")), ask(VideoPart(media["b"]), TextPart("Emotion?"))]
    batched = backend.generate(requests)
    assert [r.text for r in batched] == [backend.generate([r])[0].text for r in requests]
    assert batched[1].completion_tokens <= 3


def test_bad_media_fail_only_their_request(backend, media):
    good = three(media)
    requests = [good[0], ask(VideoPart(media["corrupt"]), TextPart("Emotion?")), good[1],
                ask(AudioPart(media["missing"]), TextPart("Emotion?")), good[2]]
    responses = backend.generate(requests)
    assert not responses[1].ok and media["corrupt"] in responses[1].error
    assert not responses[3].ok and media["missing"] in responses[3].error
    assert [r.text for r in (responses[0], responses[2], responses[4])] == [r.text for r in backend.generate(good)]


def test_unsupported_mask_is_a_per_request_error(backend, media):
    responses = backend.generate([ask(TextPart("hi"), zero={Modality.TEXT}), three(media)[1]])
    assert "zero-features" in responses[0].error and responses[1].ok


def test_zero_features_zero_only_that_requests_slice(backend, media):
    adapter = backend.adapter
    first, _, third = three(media)
    masked = replace(first, zero_features=frozenset({Modality.VIDEO}))
    plain = adapter.build_batch([first, third])
    batch = adapter.build_batch([masked, third])
    sizes = batch["video_grid_thw"].prod(-1).tolist()
    rows_masked, rows_other = batch["pixel_values_videos"].split(sizes)
    assert not rows_masked.any() and rows_other.abs().sum() > 0
    assert batch["input_ids"].equal(plain["input_ids"]) and batch["attention_mask"].equal(plain["attention_mask"])
    assert batch["input_features"].equal(plain["input_features"])
    assert rows_other.equal(plain["pixel_values_videos"].split(sizes)[1])
    audio_masked = adapter.build_batch([replace(first, zero_features=frozenset({Modality.AUDIO})), third])
    assert not audio_masked["input_features"][0].any() and audio_masked["input_features"][1].any()
    assert backend.generate([masked])[0].text != backend.generate([first])[0].text


def test_blank_media_are_black_frames_and_silence(backend, media):
    adapter = backend.adapter
    frames = adapter.load_video(VideoPart(media["a"], blank=True))
    assert frames.shape == (8, 112, 112, 3) and frames.dtype == np.uint8 and not frames.any()
    assert adapter.load_video(VideoPart(media["a"])).any()
    silence = adapter.load_audio(AudioPart(media["wav"], blank=True))
    assert silence.shape == adapter.load_audio(AudioPart(media["wav"])).shape and not silence.any()
    response = backend.generate([ask(VideoPart(media["a"], blank=True), TextPart("Emotion?"))])[0]
    assert response.ok and response.completion_tokens > 0


def test_sampling_is_seeded(backend, media):
    params = GenerationParams(max_new_tokens=12, temperature=1.0, top_p=0.9, seed=7)
    request = ask(TextPart("What emotion?"), params=params)
    assert backend.generate([request])[0].text == backend.generate([request])[0].text


def test_fingerprint_stable_across_loads_and_tracks_weights(backend, tiny_dir, tmp_path):
    assert HFBackend(str(tiny_dir)).fingerprint() == backend.fingerprint()
    assert HFBackend(str(tiny_dir), num_frames=4).fingerprint() != backend.fingerprint()
    other = tmp_path / "other"
    shutil.copytree(tiny_dir, other)
    assert HFBackend(str(other)).fingerprint() == backend.fingerprint()
    retrained = build_tiny_omni(tmp_path / "seed1", seed=1)
    shutil.copy(retrained / "model.safetensors", other / "model.safetensors")
    assert HFBackend(str(other)).fingerprint() != backend.fingerprint()


# -- other model families, tiny and random, sharing the tiny-omni tokenizer ----------------------------------


def build_family(kind: str, tiny_dir: Path, out: Path) -> Path:
    """Save a tiny random checkpoint of another family next to the tiny-omni tokenizer and processor files."""
    import torch
    import transformers as tf

    tok = tf.AutoTokenizer.from_pretrained(tiny_dir)
    ids = {name: tok.convert_tokens_to_ids(t) for name, t in (("audio", "<|AUDIO|>"), ("image", "<|IMAGE|>"),
                                                              ("video", "<|VIDEO|>"), ("bos", "<|vision_bos|>"),
                                                              ("eos", "<|vision_eos|>"))}
    text = dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, pad_token_id=tok.pad_token_id,
                eos_token_id=tok.eos_token_id, bos_token_id=None, initializer_range=0.2, tie_word_embeddings=False)
    mrope = {"rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]}}
    vision_ids = dict(image_token_id=ids["image"], video_token_id=ids["video"], vision_start_token_id=ids["bos"],
                      vision_end_token_id=ids["eos"])
    torch.manual_seed(0)
    if kind == "qwen2_audio":
        model = tf.Qwen2AudioForConditionalGeneration(tf.Qwen2AudioConfig(
            audio_config=dict(d_model=32, encoder_layers=2, encoder_attention_heads=4, encoder_ffn_dim=64,
                              num_mel_bins=128, initializer_range=0.2),
            text_config=dict(model_type="qwen2", **text), audio_token_index=ids["audio"]))
    elif kind == "qwen2_vl":
        model = tf.Qwen2VLForConditionalGeneration(tf.Qwen2VLConfig(
            vision_config=dict(depth=2, embed_dim=32, hidden_size=64, num_heads=4, initializer_range=0.2),
            text_config=dict(**text, **mrope), **vision_ids))
    elif kind == "qwen2_5_vl":
        model = tf.Qwen2_5_VLForConditionalGeneration(tf.Qwen2_5_VLConfig(
            vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, out_hidden_size=64, num_heads=4,
                               fullatt_block_indexes=[1], initializer_range=0.2),
            text_config=dict(**text, **mrope), **vision_ids))
    else:
        model = tf.Qwen2ForCausalLM(tf.Qwen2Config(**text))
    model.generation_config = tf.GenerationConfig(eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    for name in ("preprocessor_config.json", "video_preprocessor_config.json"):
        shutil.copy(tiny_dir / name, out / name)
    return out


FAMILIES = {"qwen2_audio": {Modality.AUDIO}, "qwen2_vl": {Modality.VIDEO}, "qwen2_5_vl": {Modality.VIDEO},
            "qwen2": set()}


@pytest.mark.parametrize("kind", sorted(FAMILIES))
def test_other_families_batch_and_reject_foreign_media(kind, tiny_dir, media, tmp_path):
    backend = HFBackend(str(build_family(kind, tiny_dir, tmp_path / kind)))
    assert backend.model_type == kind
    assert backend.capabilities.modalities == frozenset(FAMILIES[kind] | {Modality.TEXT})
    requests = [ask(TextPart("Is the person happy?"))]
    if Modality.VIDEO in FAMILIES[kind]:
        requests += [ask(VideoPart(media["a"]), TextPart("Emotion?")),
                     ask(VideoPart(media["b"]), TextPart("Which emotion is it?"), zero={Modality.VIDEO})]
    if Modality.AUDIO in FAMILIES[kind]:
        requests += [ask(AudioPart(media["a"]), TextPart("Emotion?")),
                     ask(AudioPart(media["wav"], blank=True), TextPart("Which emotion is it?"))]
    batched = backend.generate(requests)
    assert all(r.ok and r.completion_tokens > 0 for r in batched), [r.error for r in batched]
    assert [r.text for r in batched] == [backend.generate([r])[0].text for r in requests]
    foreign = VideoPart(media["a"]) if Modality.VIDEO not in FAMILIES[kind] else AudioPart(media["wav"])
    error = backend.generate([ask(foreign, TextPart("Emotion?"))])[0].error
    assert error and "cannot take" in error


def test_full_omni_checkpoint_loads_as_thinker(tiny_dir, backend, tmp_path):
    from safetensors.torch import load_file, save_file
    from transformers import Qwen2_5OmniConfig, Qwen2_5OmniThinkerConfig

    full = tmp_path / "full"
    shutil.copytree(tiny_dir, full)
    thinker = Qwen2_5OmniThinkerConfig.from_pretrained(tiny_dir)
    Qwen2_5OmniConfig(thinker_config=thinker.to_dict(), enable_audio_output=False).save_pretrained(full)
    weights = load_file(tiny_dir / "model.safetensors")
    save_file({f"thinker.{k}": v for k, v in weights.items()}, full / "model.safetensors", metadata={"format": "pt"})
    loaded = HFBackend(str(full))
    assert loaded.model_type == "qwen2_5_omni"
    request = ask(TextPart("Is the person happy?"))
    assert loaded.generate([request])[0].text == backend.generate([request])[0].text


def test_missing_model_directory_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="model directory not found"):
        HFBackend(str(tmp_path / "no-such-model"))
