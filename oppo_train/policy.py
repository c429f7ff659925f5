"""The policy: a Qwen2.5-Omni-style thinker loaded through mepbench's chat adapters, wrapped so that one module
serves both sampling and completion log-probs (so DDP/FSDP2 hooks see every call).

Inputs are built by the adapters (`prepare` one prompt, `collate` rows); media placeholder tokens are suppressed when
sampling, since a sampled placeholder would break re-feeding the completion (env-feasibility.md §2).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mepbench.backends.adapters import ChatAdapter, adapter_for
from mepbench.backends.adapters.base import FEATURE_KEYS, quiet_progress
from mepbench.models import resolve_alias
from oppo_train.config import ModelConfig

MEDIA_KEYS = frozenset(k for keys in FEATURE_KEYS.values() for k in keys)
ENCODERS = ("audio_tower", "visual")


@dataclass
class CompletionScores:
    """Per completion token (B, T): log-prob of the sampled token, its full log-distribution (B, T, V) when asked,
    and the entropy of the distribution (no grad)."""

    logp: torch.Tensor
    log_dist: torch.Tensor | None
    entropy: torch.Tensor


class Policy(nn.Module):
    """Completion log-probs of a thinker, and sampling through the same `forward` (pass `generate=` kwargs)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, inputs: dict[str, Any], completion_ids: torch.Tensor | None = None,
                completion_mask: torch.Tensor | None = None, *, temperature: float = 1.0, with_dist: bool = False,
                generate: dict[str, Any] | None = None) -> Any:
        """`generate` given: `model.generate(**inputs, **generate)`. Otherwise the scores of `completion_ids` after the
        prompt, with logits divided by the sampling `temperature` (the distribution that was sampled from)."""
        if generate is not None:
            return self.model.generate(**inputs, **generate)
        if completion_ids is None or completion_mask is None:
            raise ValueError("scoring needs completion_ids and completion_mask")
        prompt_len = inputs["input_ids"].shape[1]
        ids = torch.cat([inputs["input_ids"], completion_ids], dim=1)
        mask = torch.cat([inputs["attention_mask"], completion_mask.to(inputs["attention_mask"].dtype)], dim=1)
        media = {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask")}
        hidden = self.model.model(input_ids=ids, attention_mask=mask, use_cache=False, **media).last_hidden_state
        logits = self.model.lm_head(hidden[:, prompt_len - 1:-1]).float() / temperature
        log_dist = torch.log_softmax(logits, dim=-1)
        logp = log_dist.gather(-1, completion_ids.unsqueeze(-1)).squeeze(-1)
        with torch.no_grad():
            entropy = -(log_dist.exp() * log_dist).sum(-1)
        return CompletionScores(logp, log_dist if with_dist else None, entropy)


def resolve_model_path(path: str, cache_dir: Path) -> Path:
    """mepbench's aliases (`tiny-omni`, `tiny-omni-random`) or a local checkpoint folder."""
    folder = Path(resolve_alias(path, cache_dir)).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"model folder not found: {path} (download the checkpoint first)")
    return folder


def load_adapter(config: ModelConfig, cache_dir: Path, device: str = "cpu") -> ChatAdapter:
    """Model + processor through mepbench's adapter for the checkpoint's model type, in train mode, with the vision
    and audio towers frozen when `freeze_encoders` (§5)."""
    from transformers import AutoConfig

    path = resolve_model_path(config.path, cache_dir)
    hf_config = AutoConfig.from_pretrained(path)
    adapter = adapter_for(hf_config.model_type).load(path, hf_config, dtype=config.dtype, device=device,
                                                     num_frames=config.num_frames, frame_size=config.frame_size)
    adapter.model.train()
    if config.freeze_encoders:
        for name in ENCODERS:
            encoder = getattr(getattr(adapter.model, "model", adapter.model), name, None)
            if encoder is not None:
                encoder.requires_grad_(False)
    if config.gradient_checkpointing:
        enable = getattr(adapter.model, "activation_checkpointing_enable", None)  # the transformers >= 5.2x name
        (enable or adapter.model.gradient_checkpointing_enable)()
    return adapter


def load_reference(config: ModelConfig, cache_dir: Path, device: str = "cpu") -> Policy:
    """A frozen copy of the initial policy for the reference KL."""
    from transformers import AutoConfig

    path = resolve_model_path(config.path, cache_dir)
    hf_config = AutoConfig.from_pretrained(path)
    with quiet_progress():
        model = adapter_for(hf_config.model_type).load_model(path, hf_config, getattr(torch, config.dtype))
    return Policy(model.to(device).eval().requires_grad_(False))


def to_device(batch: dict[str, Any], device: torch.device | str, dtype: torch.dtype) -> dict[str, Any]:
    """Batch tensors on `device`; media features in the model's dtype."""
    out = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            value = value.to(device, dtype=dtype) if key in MEDIA_KEYS else value.to(device)
        out[key] = value
    return out


def completion_mask(ids: torch.Tensor, eos_ids: list[int]) -> torch.Tensor:
    """1 for completion tokens up to and including the first end-of-turn token, 0 after it (padding)."""
    is_eos = torch.isin(ids, torch.tensor(eos_ids, device=ids.device))
    after = (torch.cumsum(is_eos.long(), dim=1) - is_eos.long()) > 0
    return (~after).long()


def export_pretrained(model: nn.Module, source: Path, out_dir: Path,
                      state_dict: dict[str, torch.Tensor] | None = None) -> Path:
    """Save the thinker in transformers format with the source checkpoint's tokenizer/processor files, so that
    `mepbench eval --model out_dir` can evaluate it."""
    import shutil

    out_dir.mkdir(parents=True, exist_ok=True)
    with quiet_progress():
        model.save_pretrained(out_dir, state_dict=state_dict)
    for item in source.iterdir():
        keep = item.suffix in (".json", ".jinja", ".txt", ".model") and not item.name.startswith("mepbench_")
        if item.is_file() and keep and not (out_dir / item.name).exists():
            shutil.copy2(item, out_dir / item.name)
    return out_dir
