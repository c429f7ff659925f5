"""A tiny, randomly initialised Qwen2.5-Omni thinker with a locally trained tokenizer.

It lets the hf backend, the runner and the trainer run end to end on a CPU with no downloads; its
outputs are meaningless. Recipe: research/env-feasibility.md §2a-2b. Two sizes: `test` (what the tests
run) and `repro` (the starting point of the mini OPPO reproduction, a little deeper and wider).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from mepbench.models.build import build_atomically, finish_build, is_complete, save_random_model

BUILD_VERSION = 2
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                  "preprocessor_config.json", "video_preprocessor_config.json", "README.md")

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|AUDIO|>", "<|audio_bos|>",
                  "<|audio_eos|>", "<|IMAGE|>", "<|VIDEO|>", "<|vision_bos|>", "<|vision_eos|>")
NAMED_TOKENS = {"audio_token": "<|AUDIO|>", "audio_bos_token": "<|audio_bos|>",
                "audio_eos_token": "<|audio_eos|>", "image_token": "<|IMAGE|>", "video_token": "<|VIDEO|>",
                "vision_bos_token": "<|vision_bos|>", "vision_eos_token": "<|vision_eos|>"}

LABELS = ("happy", "sad", "angry", "surprised", "fearful", "neutral")
EMOTION_WORDS = ("joy", "joyful", "cheerful", "delighted", "sorrow", "unhappy", "grief", "furious", "rage",
                 "irritated", "astonished", "shocked", "amazed", "afraid", "scared", "anxious", "calm",
                 "relaxed", "indifferent", "excited", "disappointed", "worried", "content")
SCENE_WORDS = ("man", "woman", "child", "friend", "mother", "father", "teacher", "doctor", "office", "street",
               "kitchen", "party", "meeting", "phone", "letter", "news", "gift", "accident", "exam", "job",
               "money", "home", "door", "window", "car", "rain", "night", "morning", "birthday", "wedding",
               "funeral", "hospital", "argument", "surprise", "joke", "mistake", "promise", "secret", "dream",
               "music", "shouts", "whispers", "laughs", "cries", "nods", "shakes", "looks", "turns", "walks",
               "runs", "stands", "sits", "holds", "drops", "opens", "closes", "hugs", "points", "waves",
               "stares", "blinks", "smiles", "frowns", "screams", "pauses", "hesitates", "stammers", "asks",
               "answers", "explains", "complains", "apologizes", "thanks", "refuses", "agrees", "suddenly",
               "slowly", "quietly", "loudly", "again", "never", "always", "really", "very", "quite", "because",
               "although", "while", "after", "before", "then", "could", "would", "should", "might", "must")
VISUAL_CUES = ("smiling mouth", "furrowed brows", "wide open eyes", "raised eyebrows", "tears",
               "clenched jaw", "downturned lips", "trembling hands", "relaxed face", "frowning")
ACOUSTIC_CUES = ("high pitch", "trembling voice", "sigh", "loud voice", "soft voice", "laughter",
                 "shaky breath", "fast speech", "slow speech", "flat tone")
TEMPLATES = (
    "<think>The video shows {v}, and the audio has {a}. The subtitle suggests {w}.</think>"
    "<answer>{label}</answer>",
    "The person has {v} and speaks with {a}, so the emotion is {label}.",
    "Is there {v} in the video? yes. Is there {a} in the audio? no.",
    "Visual cue: {v}. Acoustic cue: {a}. Emotion: {label}.",
    "What emotion does the speaker feel? Answer with one of happy, sad, angry, surprised, fearful, neutral.",
    "Watch the video and listen to the audio, then describe the facial expression, body language and "
    "tone of voice before giving your final answer about the {label} person.",
    "The subtitle reads: I cannot believe this is happening to me today. Her voice has {a}.",
    "First think step by step about the visual evidence ({v}) and the acoustic evidence ({a}), "
    "then answer inside answer tags.",
    "Does the speaker sound {w}? Does the face look {label}? Reply yes or no.",
    "In the {s1}, the {s2} {s3} and {s4} {s5}; the scene feels {w}.",
)

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'video' %}{{ '<|vision_bos|><|VIDEO|><|vision_eos|>' }}"
    "{% elif part['type'] == 'audio' %}{{ '<|audio_bos|><|AUDIO|><|audio_eos|>' }}"
    "{% elif part['type'] == 'image' %}{{ '<|vision_bos|><|IMAGE|><|vision_eos|>' }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}"
    "{% endif %}{% endfor %}{% endif %}"
    "{{ '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

MODEL_CARD = """---
license: apache-2.0
tags: [mepbench, test-fixture, random-weights]
---
# tiny-omni (mepbench test model)

A `Qwen2_5OmniThinkerForConditionalGeneration` with **randomly initialised weights** (seed {seed}),
{params:,} parameters, built locally by `mepbench.models.tiny_omni.build_tiny_omni`. The ByteLevel BPE
tokenizer ({vocab} tokens) was trained on a generated corpus of emotion words and cue phrases.

It exists so that evaluation and training code can run end to end on a CPU with no downloads. Its
outputs are meaningless: never report its scores as results.
"""


def _synth_lines(n: int = 300) -> list[str]:
    """mep-synth's vocabulary: its cues, subtitles and the reference reasoning of `n` drawn clips."""
    import numpy as np

    from mepbench.scoring import vocabulary
    from mepbench.synth import cues

    lines = [", ".join(vocabulary.VISUAL_CUES), ", ".join(vocabulary.AUDIO_CUES), *cues.NEUTRAL_SUBTITLES,
             *(text for pairs in vocabulary.SUBTITLES.values() for text, _ in pairs)]
    rng = np.random.default_rng(12345)
    return lines + [cues.reasoning(cues.sample_clip(rng)) for _ in range(n)]


def _corpus() -> list[str]:
    """Deterministic training text for the tokenizer: labels, cues, tags, template sentences and mep-synth's text."""
    lines = [" ".join(LABELS), " ".join(EMOTION_WORDS), ", ".join(VISUAL_CUES), ", ".join(ACOUSTIC_CUES),
             "<think> </think> <answer> </answer>", *_synth_lines()]
    words, scene = itertools.cycle(EMOTION_WORDS), itertools.cycle(SCENE_WORDS)
    for i, (v, a, label) in enumerate(itertools.product(VISUAL_CUES, ACOUSTIC_CUES, LABELS)):
        slots = {f"s{k}": next(scene) for k in range(1, 6)}
        lines.append(TEMPLATES[i % len(TEMPLATES)].format(v=v, a=a, w=next(words), label=label, **slots))
    return lines


def _train_tokenizer(vocab_size: int = 1000):
    """ByteLevel BPE trained on `_corpus()`, wrapped as a transformers fast tokenizer with named tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   extra_special_tokens=dict(NAMED_TOKENS), chat_template=CHAT_TEMPLATE,
                                   padding_side="left", model_max_length=32768)


INIT_RANGE = 0.2  # 10x the default, so that greedy outputs visibly depend on the inputs


# text tower per size: hidden, layers, heads, kv heads, MLP width, M-RoPE sections (summing to head_dim / 2)
SIZES = {"test": (64, 2, 4, 2, 128, [2, 3, 3]), "repro": (128, 3, 4, 2, 256, [4, 6, 6])}


def _thinker_config(tok, size: str = "test", init_range: float = INIT_RANGE):
    """Config of the tiny thinker (text hidden 64 / 2 layers for `test`, 128 / 3 for `repro`; audio d_model 32,
    vision depth 2), every tower initialised with standard deviation `init_range`."""
    from transformers import Qwen2_5OmniThinkerConfig

    hidden, layers, heads, kv_heads, ffn, mrope = SIZES[size]
    ids = {name: tok.convert_tokens_to_ids(t) for name, t in NAMED_TOKENS.items()}
    pad, eos = tok.convert_tokens_to_ids("<|endoftext|>"), tok.convert_tokens_to_ids("<|im_end|>")
    return Qwen2_5OmniThinkerConfig(
        audio_config=dict(d_model=32, encoder_layers=2, encoder_attention_heads=4, encoder_ffn_dim=64,
                          num_mel_bins=128, max_source_positions=1500, n_window=100, output_dim=hidden,
                          initializer_range=init_range),
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=4, patch_size=14,
                           spatial_merge_size=2, temporal_patch_size=2, window_size=112, out_hidden_size=hidden,
                           fullatt_block_indexes=[1], initializer_range=init_range),
        text_config=dict(vocab_size=len(tok), hidden_size=hidden, intermediate_size=ffn, num_hidden_layers=layers,
                         num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=32768,
                         rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": mrope},
                         tie_word_embeddings=False, pad_token_id=pad, eos_token_id=eos,
                         initializer_range=init_range),
        audio_token_index=ids["audio_token"], image_token_index=ids["image_token"],
        video_token_index=ids["video_token"], audio_start_token_id=ids["audio_bos_token"],
        audio_end_token_id=ids["audio_eos_token"], vision_start_token_id=ids["vision_bos_token"],
        vision_end_token_id=ids["vision_eos_token"], position_id_per_seconds=25, seconds_per_chunk=2,
        pad_token_id=pad, eos_token_id=eos, initializer_range=init_range,
    )


def _processor_configs() -> tuple[dict, dict]:
    """preprocessor_config.json (Whisper features + PIL image processor, merged as in Qwen's repos) and
    video_preprocessor_config.json."""
    from transformers import Qwen2VLImageProcessorPil, WhisperFeatureExtractor

    fe = WhisperFeatureExtractor(feature_size=128, sampling_rate=16000).to_dict()
    fe.pop("mel_filters", None)
    img = Qwen2VLImageProcessorPil(min_pixels=56 * 56, max_pixels=224 * 224).to_dict()
    pre = {**fe, **img, "image_processor_type": "Qwen2VLImageProcessor",
           "feature_extractor_type": "WhisperFeatureExtractor", "processor_class": "Qwen2_5OmniProcessor"}
    video = {k: img[k] for k in ("patch_size", "temporal_patch_size", "merge_size", "image_mean", "image_std")}
    video.update(video_processor_type="Qwen2VLVideoProcessor", min_pixels=56 * 56, max_pixels=224 * 224,
                 processor_class="Qwen2_5OmniProcessor")
    return pre, video


def balance_projectors(model, seed: int) -> dict[str, float]:
    """Scale the last layer of the vision merger and of the audio projection so that their output tokens have the
    mean L2 norm of the text embeddings (at INIT_RANGE the towers' tokens are ~17x longer, and a language model
    trained from scratch then ignores them). Measured on seeded random features; returns the factors applied."""
    import torch

    inner = model.model
    with torch.no_grad():
        target = float(inner.get_input_embeddings().weight.norm(dim=1).mean())
    gen = torch.Generator().manual_seed(seed)
    vision, audio = model.config.vision_config, model.config.audio_config
    grid = torch.tensor([[2, 8, 8]])
    pixels = torch.randn(int(grid.prod()), 3 * vision.temporal_patch_size * vision.patch_size ** 2, generator=gen)
    features = 0.5 * torch.randn(1, audio.num_mel_bins, 400, generator=gen)
    with torch.no_grad():
        video = torch.cat(inner.get_video_features(pixels, grid, return_dict=True).pooler_output)
        heard = inner.get_audio_features(features, torch.ones(1, 400, dtype=torch.long),
                                         return_dict=True).last_hidden_state
        factors = {}
        for name, layer, tokens in (("vision", inner.visual.merger.mlp[2], video),
                                    ("audio", inner.audio_tower.proj, heard)):
            factors[name] = target / float(tokens.norm(dim=-1).mean())
            layer.weight.mul_(factors[name])
            if layer.bias is not None:
                layer.bias.mul_(factors[name])
    return factors


def _write(tmp: Path, seed: int, size: str, balanced: bool = False, init_range: float = INIT_RANGE) -> None:
    """Build every file of the model directory into `tmp` (with `balanced`, the towers' outputs at the text scale)."""
    from transformers import Qwen2_5OmniThinkerForConditionalGeneration

    tok = _train_tokenizer()
    config = _thinker_config(tok, size, init_range)
    if balanced:
        import torch

        from mepbench.models.build import save_model

        torch.manual_seed(seed)
        model = Qwen2_5OmniThinkerForConditionalGeneration(config).eval()
        balance_projectors(model, seed)
        save_model(tmp, model, config, tok)
    else:
        model = save_random_model(tmp, Qwen2_5OmniThinkerForConditionalGeneration, config, tok, seed)
    pre, video = _processor_configs()
    (tmp / "preprocessor_config.json").write_text(json.dumps(pre, indent=2, sort_keys=True))
    (tmp / "video_preprocessor_config.json").write_text(json.dumps(video, indent=2, sort_keys=True))
    finish_build(tmp, model, tok, MODEL_CARD, _version(size, balanced, init_range), seed)


def _version(size: str, balanced: bool = False, init_range: float = INIT_RANGE) -> int | str:
    """The build stamp: BUILD_VERSION, then the size, `balanced` and a non-default `init_range` where they apply."""
    if size not in SIZES:
        raise ValueError(f"unknown tiny-omni size {size!r}; choose one of {sorted(SIZES)}")
    if not 0 < init_range <= 1:
        raise ValueError(f"init_range must be in (0, 1], got {init_range}")
    version = BUILD_VERSION if size == "test" else f"{BUILD_VERSION}-{size}"
    version = f"{version}-balanced" if balanced else version
    return version if init_range == INIT_RANGE else f"{version}-init{init_range:g}"


def build_tiny_omni(out_dir: str | Path, seed: int = 0, size: str = "test", balanced: bool = False,
                    init_range: float = INIT_RANGE) -> Path:
    """Build the tiny random omni model of `size` into `out_dir` (atomically) unless a complete build is there;
    `balanced` scales the towers' output layers to the text embeddings' norm (`balance_projectors`); `init_range`
    is the weights' initial standard deviation (INIT_RANGE by default; 0.02 is the usual one for training)."""
    version = _version(size, balanced, init_range)
    return build_atomically(Path(out_dir), lambda p: is_complete(p, REQUIRED_FILES, version, seed),
                            lambda p: _write(p, seed, size, balanced, init_range))


def ensure_tiny_omni(cache_dir: Path) -> Path:
    """`cache_dir/models/tiny-omni-random` (the test model), built on first use."""
    return build_tiny_omni(Path(cache_dir) / "models" / "tiny-omni-random")
