"""The policy: a Qwen2.5-Omni-style thinker loaded through mepbench's chat adapters, wrapped so that one module
serves both sampling and completion log-probs (so DDP/FSDP2 hooks see every call).

Inputs are built by the adapters (`prepare` one prompt, `collate` rows); media placeholder tokens are suppressed when
sampling, since a sampled placeholder would break re-feeding the completion (env-feasibility.md §2). Scoring merges
the tower outputs into the prompt embeddings itself (as the thinker's `forward` does), so that the passes over one
rollout can share the rope positions and the frozen towers' outputs, and a pass can run on some rows and a prefix.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from mepbench.backends.adapters import FEATURE_KEYS, ChatAdapter, adapter_for, quiet_progress
from mepbench.models import resolve_alias
from oppo_train.config import ModelConfig
from oppo_train.core.kl import exact_kl

MEDIA_KEYS = frozenset(k for keys in FEATURE_KEYS.values() for k in keys)
ENCODERS = ("audio_tower", "visual")
# feature key → (the thinker config's placeholder token id, the tower module, the items' grid key)
TOWERS = {"pixel_values_videos": ("video_token_id", "visual", "video_grid_thw"),
          "pixel_values": ("image_token_id", "visual", "image_grid_thw"),
          "input_features": ("audio_token_id", "audio_tower", None)}


@dataclass
class CompletionScores:
    """Per completion token (B, T): log-prob of the sampled token and the entropy of the distribution (no grad; not
    computed when only some tokens are scored). With targets and `with_dist`, the log-distributions at the target
    positions, (N, V) in row-major target order; with `kl_against`, per copy the (B, T) exact KL(this pass ‖ that
    copy) at its positions (0 elsewhere), with gradient."""

    logp: torch.Tensor
    log_dist: torch.Tensor | None
    entropy: torch.Tensor | None
    kl: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class Context:
    """What the passes over one rollout share (`Policy(..., encode=True)`): the 3-D rope positions of prompt +
    completion (None for a text-only model: its own), and the outputs of the frozen towers on the full input by
    feature key (in placeholder order)."""

    positions: torch.Tensor | None
    towers: dict[str, torch.Tensor] = field(default_factory=dict)

    def without(self, keys: Iterable[str]) -> Context:
        """The context minus the tower outputs of `keys` (those a pass recomputes, e.g. from masked features)."""
        drop = set(keys)
        return Context(self.positions, {k: v for k, v in self.towers.items() if k not in drop})


def target_span(targets: torch.Tensor) -> tuple[torch.Tensor, int]:
    """The rows with a target token and the length up to the last one; with none, row 0 and length 1, so that every
    process still makes the same module calls (DDP buffer broadcasts, FSDP all-gathers)."""
    rows = targets.any(1).nonzero().squeeze(1)
    if rows.numel() == 0:
        return torch.zeros(1, dtype=torch.long, device=targets.device), 1
    return rows, int(targets.any(0).nonzero().max()) + 1


class Policy(nn.Module):
    """Completion log-probs of a thinker, and sampling through the same `forward` (pass `generate=` kwargs)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, inputs: dict[str, Any], completion_ids: torch.Tensor | None = None,
                completion_mask: torch.Tensor | None = None, *, temperature: float = 1.0, with_dist: bool = False,
                generate: dict[str, Any] | None = None, encode: bool = False, context: Context | None = None,
                targets: torch.Tensor | None = None,
                kl_against: Mapping[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
                chunk_size: int = 512) -> Any:
        """`generate` given: `model.generate(**inputs, **generate)`; `encode`: the rollout's `Context`. Otherwise the
        scores of `completion_ids` after the prompt, with logits divided by the sampling `temperature` (the distribution
        that was sampled from), reusing `context`. With `targets` (B, T bool) only those tokens are scored (0
        elsewhere): rows without one are left out and each row stops at the last one (causal, so nothing changes).
        `kl_against` maps a copy's name to its positions (B, T bool) and log-distributions there (N, V): the exact KL
        is computed at those positions only, `chunk_size` at a time (each chunk recomputed in the backward pass), so
        nothing (B, T, V)-sized is added for it."""
        if generate is not None:
            return self.model.generate(**inputs, **generate)
        if completion_ids is None or completion_mask is None:
            raise ValueError("scoring needs completion_ids and completion_mask")
        if encode or context is None:
            shared = self._encode(inputs, completion_ids, completion_mask, towers=encode)
            if encode:
                return shared
            context = shared
        prompt = self._prompt_embeds(inputs, context.towers)
        attn, positions = inputs["attention_mask"], context.positions
        if targets is not None:
            rows, length = target_span(targets)
            prompt, attn = prompt[rows], attn[rows]
            positions = None if positions is None else positions[:, rows]
            completion_ids, completion_mask = completion_ids[rows, :length], completion_mask[rows, :length]
        inner = self.model.model
        embeds = torch.cat([prompt, inner.get_input_embeddings()(completion_ids)], dim=1)
        mask = torch.cat([attn, completion_mask.to(attn.dtype)], dim=1)
        backbone = getattr(inner, "language_model", inner)  # a thinker's text model, or a text-only model itself
        hidden = backbone(inputs_embeds=embeds, attention_mask=mask, use_cache=False,
                          position_ids=None if positions is None else positions[..., :mask.shape[1]]).last_hidden_state
        hidden = hidden[:, prompt.shape[1] - 1:-1]
        if targets is None:
            logits = self.logits(hidden, temperature)
            logp = logits.gather(-1, completion_ids.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
            with torch.no_grad():
                log_dist = torch.log_softmax(logits, dim=-1)
                entropy = -(log_dist.exp() * log_dist).sum(-1)
            del log_dist
            kl = {name: self._routed_kl(hidden, where, log_q, temperature, chunk_size)
                  for name, (where, log_q) in (kl_against or {}).items()}
            return CompletionScores(logp, None, entropy, kl)
        picked = targets[rows, :length]
        return self._target_scores(hidden[picked], completion_ids[picked], targets, temperature, with_dist, chunk_size)

    def logits(self, hidden: torch.Tensor, temperature: float) -> torch.Tensor:
        """LM-head logits over `temperature`, in float32 at least (float64 stays float64)."""
        out = self.model.lm_head(hidden)
        return (out if out.dtype == torch.float64 else out.float()) / temperature

    def _kl_chunk(self, hidden: torch.Tensor, log_q: torch.Tensor, temperature: float) -> torch.Tensor:
        """Exact KL(this pass ‖ q) at a chunk of positions: (n, H) hidden states, (n, V) log-distributions of q."""
        log_p = torch.log_softmax(self.logits(hidden, temperature), dim=-1)
        return exact_kl(log_p, log_q.to(log_p.device, log_p.dtype))

    def _routed_kl(self, hidden: torch.Tensor, where: torch.Tensor, log_q: torch.Tensor, temperature: float,
                   chunk_size: int) -> torch.Tensor:
        """(B, T) exact KL at the positions `where` (0 elsewhere), from the hidden states gathered there first."""
        picked = hidden[where]
        if picked.shape[0] != log_q.shape[0]:
            raise ValueError(f"{picked.shape[0]} positions but {log_q.shape[0]} masked log-distributions")
        parts = []
        for lo in range(0, picked.shape[0], chunk_size):
            args = (picked[lo:lo + chunk_size], log_q[lo:lo + chunk_size], temperature)
            parts.append(checkpoint(self._kl_chunk, *args, use_reentrant=False) if torch.is_grad_enabled()
                         else self._kl_chunk(*args))
        values = torch.cat(parts) if parts else picked.new_zeros(0, dtype=log_q.dtype)
        return values.new_zeros(where.shape).masked_scatter(where, values)

    def _target_scores(self, hidden: torch.Tensor, tokens: torch.Tensor, targets: torch.Tensor, temperature: float,
                       with_dist: bool, chunk_size: int) -> CompletionScores:
        """Scores of the target tokens (`hidden` and `tokens` in row-major target order) placed in (B, T) zeros, from
        logsumexp; with `with_dist` also their (N, V) log-distributions, computed `chunk_size` positions at a time."""
        logp = hidden.new_zeros(targets.shape, dtype=torch.float64 if hidden.dtype == torch.float64 else torch.float32)
        picked, dists = [], []
        for lo in range(0, hidden.shape[0], chunk_size):
            logits = self.logits(hidden[lo:lo + chunk_size], temperature)
            ids = tokens[lo:lo + chunk_size].unsqueeze(-1)
            picked.append(logits.gather(-1, ids).squeeze(-1) - torch.logsumexp(logits, dim=-1))
            if with_dist:
                dists.append(torch.log_softmax(logits, dim=-1))
        if picked:
            logp = logp.masked_scatter(targets, torch.cat(picked))
        log_dist = (torch.cat(dists) if dists else hidden.new_zeros(0, 1)) if with_dist else None
        return CompletionScores(logp, log_dist, None)

    def _encode(self, inputs: dict[str, Any], completion_ids: torch.Tensor, completion_mask: torch.Tensor, *,
                towers: bool) -> Context:
        """The rope positions of prompt + completion (as the thinker computes them) and, when `towers`, the outputs of
        the towers whose parameters are all frozen (the same for the policy, its reference and every masked copy's
        other modality). A text-only model has neither."""
        inner = self.model.model
        if not hasattr(inner, "get_rope_index"):
            return Context(None)
        ids = torch.cat([inputs["input_ids"], completion_ids], dim=1)
        mask = torch.cat([inputs["attention_mask"], completion_mask.to(inputs["attention_mask"].dtype)], dim=1)
        frames = inputs.get("feature_attention_mask")
        positions, _ = inner.get_rope_index(
            input_ids=ids, image_grid_thw=inputs.get("image_grid_thw"), video_grid_thw=inputs.get("video_grid_thw"),
            attention_mask=mask, use_audio_in_video=bool(inputs.get("use_audio_in_video", False)),
            audio_seqlens=None if frames is None else frames.sum(1),
            second_per_grids=inputs.get("video_second_per_grid"))
        frozen = {key: self._tower(key, inputs) for key, (_, tower, _) in TOWERS.items()
                  if towers and inputs.get(key) is not None
                  and not any(p.requires_grad for p in getattr(inner, tower).parameters())}
        return Context(positions, frozen)

    def _tower(self, key: str, inputs: dict[str, Any]) -> torch.Tensor:
        """The tower output for the features under `key`, one row per placeholder token (as the thinker merges it)."""
        inner = self.model.model
        if key == "input_features":
            return inner.get_audio_features(inputs[key], inputs.get("feature_attention_mask"),
                                            inputs.get("audio_feature_lengths"), return_dict=True).last_hidden_state
        get = inner.get_video_features if key == "pixel_values_videos" else inner.get_image_features
        return torch.cat(get(inputs[key], inputs[TOWERS[key][2]], return_dict=True).pooler_output)

    def _prompt_embeds(self, inputs: dict[str, Any], towers: dict[str, torch.Tensor]) -> torch.Tensor:
        """The prompt's input embeddings with the media placeholders replaced by the tower outputs (from `towers` where
        given, else computed from `inputs`)."""
        inner = self.model.model
        ids = inputs["input_ids"]
        embeds = inner.get_input_embeddings()(ids)
        for key, (token, _, _) in TOWERS.items():
            if inputs.get(key) is not None:
                out = towers[key] if key in towers else self._tower(key, inputs)
                slots = (ids == getattr(inner.config, token)).unsqueeze(-1)
                embeds = embeds.masked_scatter(slots, out.to(embeds.device, embeds.dtype))
        return embeds


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
