"""A tiny, randomly initialised Qwen2 causal LM (head_dim 64) sharing tiny-omni's tokenizer and chat template.

vLLM's CPU attention needs a head size of at least 32 (tiny-omni's is 16), so this model is what the
vllm/openai backends are tested and benchmarked with, next to the hf backend. Its outputs are noise.
"""

from __future__ import annotations

from pathlib import Path

from mepbench.models.build import build_atomically, finish_build, is_complete, save_random_model
from mepbench.models.tiny_omni import INIT_RANGE, _train_tokenizer

BUILD_VERSION = 1
REQUIRED_FILES = ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                  "tokenizer_config.json", "README.md")
MAX_POSITIONS = 4096

MODEL_CARD = """---
license: apache-2.0
tags: [mepbench, test-fixture, random-weights]
---
# tiny-text (mepbench test model)

A `Qwen2ForCausalLM` with **randomly initialised weights** (seed {seed}), {params:,} parameters
(hidden 128, 2 layers, 2 heads of size 64, 1 KV head), built locally by
`mepbench.models.tiny_text.build_tiny_text` with tiny-omni's tokenizer ({vocab} tokens) and chat template.

It exists so that the vLLM, OpenAI-compatible and transformers backends can run on a CPU with no downloads.
Its outputs are meaningless: never report its scores as results.
"""


def _config(tok):
    """Qwen2 config: hidden 128, 2 layers, 2 attention heads (head_dim 64, vLLM CPU's range), 1 KV head."""
    from transformers import Qwen2Config

    pad, eos = tok.convert_tokens_to_ids("<|endoftext|>"), tok.convert_tokens_to_ids("<|im_end|>")
    return Qwen2Config(vocab_size=len(tok), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                       num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=MAX_POSITIONS,
                       tie_word_embeddings=False, pad_token_id=pad, eos_token_id=eos, bos_token_id=None,
                       initializer_range=INIT_RANGE)


def _write(tmp: Path, seed: int) -> None:
    """Build every file of the model directory into `tmp`."""
    from transformers import Qwen2ForCausalLM

    tok = _train_tokenizer()
    model = save_random_model(tmp, Qwen2ForCausalLM, _config(tok), tok, seed)
    finish_build(tmp, model, tok, MODEL_CARD, BUILD_VERSION, seed)


def build_tiny_text(out_dir: str | Path, seed: int = 0) -> Path:
    """Build the tiny random Qwen2 text model into `out_dir` (atomically) unless a complete build is there."""
    return build_atomically(Path(out_dir), lambda p: is_complete(p, REQUIRED_FILES, BUILD_VERSION, seed),
                            lambda p: _write(p, seed))


def ensure_tiny_text(cache_dir: Path) -> Path:
    """`cache_dir/models/tiny-text`, built on first use."""
    return build_tiny_text(Path(cache_dir) / "models" / "tiny-text")
