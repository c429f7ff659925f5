"""Config dataclasses with the paper's defaults (oppo-paper.md §5), loaded from YAML plus `key=value` overrides.

Sections nest (`model.path=...`, `perception.beta=0.01`); a value is parsed as YAML. Unknown keys are an error.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from mepbench.scoring import DEFAULT_EMBEDDER
from oppo_train.variants import VARIANTS, Perception

PERCEPTION_ESTIMATORS = ("exact", "k1_authors", "k3")
MASK_STYLES = ("element", "patch")


@dataclass
class ModelConfig:
    """The policy checkpoint (a folder, or an alias: `tiny-omni` the trained default, `tiny-omni-random` the random
    test model) and how it trains."""

    path: str = "tiny-omni-random"
    dtype: str = "float32"
    freeze_encoders: bool = True  # vision and audio towers frozen, LLM trained (§5)
    gradient_checkpointing: bool = False
    num_frames: int = 8
    frame_size: int = 112


@dataclass
class DataConfig:
    """Training samples: `mep-synth` (generated), `records` (the authors' RL JSONL with `extracted_clues`) or `csv`
    (OV-MERD / MER-Caption+ style: one row per clip, a per-sample cue JSONL). For mep-synth, `decided_share` (e.g.
    `{video: 0.35}`) takes the n clips from a suite of `pool_n` so that that share is decided by one modality alone."""

    source: str = "mep-synth"
    path: str | None = None
    cue_file: str | None = None
    media_root: str | None = None
    n: int = 200
    seed: int = 0
    decided_share: dict[str, float] = field(default_factory=dict)
    pool_n: int | None = None
    limit: int | None = None
    require_media: bool = True
    id_column: str = "name"
    label_column: str = "openset"
    reason_column: str = "reason"
    subtitle_column: str = "subtitle"
    video_template: str = "video/{id}.mp4"
    audio_template: str = "audio/{id}.wav"


@dataclass
class RewardConfig:
    """Reward weights (`preset` paper | code, or explicit `weights`), the cue embedder and δ, the wheel folder for R_acc,
    and user reward callables by import path (`extra: {name: "module:function"}`, weighted in `weights`)."""

    preset: str = "paper"
    alpha: float = 0.5
    weights: dict[str, float] | None = None
    embedder: str = DEFAULT_EMBEDDER
    delta: float = 0.5
    wheel_dir: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


@dataclass
class PerceptionConfig:
    """The perception term (OPPO §4, PAPO): β, mask ratio ρ, mask style (`element`: each feature zeroed with prob. ρ,
    the OPPO authors'; `patch`: each patch blackened with prob. ρ, PAPO's), the per-token estimator (`exact` KL(full ‖
    masked) over the vocabulary; `k1_authors`, the OPPO authors' sampled log-ratio, whose gradient ignores the masked
    pass; `k3`, PAPO's, whose gradient is the reverse KL's), η on the full-input entropy, an optional per-token cap and
    the positions per chunk of the exact KL. Unset (null) values take the variant's defaults (`oppo_train.variants`)."""

    beta: float | None = None
    rho: float | None = None
    estimator: str | None = None
    entropy_coef: float | None = None
    mask: str | None = None
    kl_clip: float | None = None
    chunk_size: int = 512


@dataclass
class TrainConfig:
    """What the SFT and RL stages share: output, seed, steps, optimiser, checkpoints and logging."""

    output_dir: str = "runs/oppo"
    cache_dir: str | None = None
    seed: int = 42
    max_steps: int = 0  # 0: num_epochs over the data
    num_epochs: int = 1
    prompts_per_step: int = 8  # global, over all processes: the step is the same for any process count
    micro_batch_prompts: int = 1
    lr: float = 2e-6
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    lr_scheduler: str = "constant"
    warmup_steps: int = 0
    checkpoint_every: int = 50
    keep_checkpoints: int = 2
    resume: str = "auto"  # auto | never | a checkpoint folder
    tensorboard: bool = False
    wandb: bool = False
    wandb_project: str = "oppo"


@dataclass
class SFTConfig(TrainConfig):
    """Stage 1 (§5): cross-entropy on `<think>` reasoning + `<answer>` labels; lr 2e-5, 2 epochs."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    lr: float = 2e-5
    num_epochs: int = 2
    probes_per_clip: int = 0  # yes/no cue questions per clip with the full input (mepbench's probe prompt)
    describe_share: float = 0.0  # share of clips with "what does the face / the voice show" rows (full input)
    reasoning_rows: bool = True  # False: an alignment stage of probe and describe rows only (no route but perception)


@dataclass
class RolloutConfig:
    """The rollout engine: transformers `generate` (`hf`) or an in-process vLLM engine per process (`vllm`), whose
    weights are synced from the policy before a step's rollout when they changed; the rest are vLLM engine arguments
    (`dtype` null: the policy's `model.dtype`)."""

    engine: str = "hf"
    gpu_memory_utilization: float = 0.3  # the share of GPU memory vLLM takes beside the training state
    enable_sleep_mode: bool = False  # offload vLLM's weights and drop its KV cache between rollouts
    max_model_len: int | None = None
    dtype: str | None = None
    enforce_eager: bool = False


@dataclass
class RLConfig(TrainConfig):
    """Stage 2 (§5): GRPO with G = 4, lr 2e-6, clip 0.2, ref-KL 0.04 (k3, decayed to 0.01 over the first half as in
    the authors' code), no std scaling, on-policy; `variant` picks the ablation row (baseline … oppo)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    rewards: RewardConfig = field(default_factory=RewardConfig)
    perception: PerceptionConfig = field(default_factory=PerceptionConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    variant: str = "oppo"
    num_generations: int = 4
    max_new_tokens: int = 1024
    temperature: float = 0.9
    top_p: float = 1.0
    top_k: int = 50
    loss_type: str = "dapo"
    scale_rewards: str = "none"
    clip_eps: float = 0.2
    clip_eps_high: float | None = None
    ref_kl_coef: float = 0.04
    ref_kl_final: float | None = 0.01
    ref_kl_decay: float = 0.5
    ref_kl_estimator: str = "k3"

    @property
    def strategy(self) -> Perception:
        """The variant's perception strategy (masked copies and their tokens)."""
        return VARIANTS[self.variant].perception

    @property
    def cue_rewards(self) -> bool:
        """Whether the cue-based reward parts (R_omni) are on."""
        return VARIANTS[self.variant].cue_rewards


class ConfigError(ValueError):
    """A bad config file, key or value; the message names it."""


C = TypeVar("C")


def _set(obj: Any, dotted: str, value: Any, where: str, prefix: str = "") -> None:
    head, _, rest = dotted.partition(".")
    names = {f.name for f in dataclasses.fields(obj)}
    if head not in names:
        raise ConfigError(f"{where}: unknown key {prefix + dotted!r} in {type(obj).__name__}; known: {sorted(names)}")
    current = getattr(obj, head)
    if dataclasses.is_dataclass(current):
        if rest:
            _set(current, rest, value, where, f"{prefix}{head}.")
            return
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: {prefix + head!r} is a section; give a mapping or {head}.<key>=...")
        for key, item in value.items():
            _set(current, str(key), item, where, f"{prefix}{head}.")
        return
    if rest and isinstance(current, dict):
        _set_in_mapping(current, rest, value)
        return
    if rest:
        raise ConfigError(f"{where}: {prefix + head!r} is not a section (in {prefix + dotted!r})")
    setattr(obj, head, _coerce(typing.get_type_hints(type(obj))[head], value, f"{where}: {prefix + dotted}"))


def _set_in_mapping(mapping: dict[str, Any], dotted: str, value: Any) -> None:
    """`a.b=v` into a free-form mapping field (the repro's per-stage overrides), creating nested mappings."""
    head, _, rest = dotted.partition(".")
    if not rest:
        mapping[head] = value
        return
    inner = mapping.get(head)
    mapping[head] = inner = dict(inner) if isinstance(inner, dict) else {}
    _set_in_mapping(inner, rest, value)


def _coerce(hint: Any, value: Any, where: str) -> Any:
    """`value` as the field's type (YAML reads 1e-3 as a string, so numbers are parsed here); ConfigError otherwise."""
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    if value is None:
        if type(None) in options:
            return None
        raise ConfigError(f"{where} cannot be null")
    for option in options:
        base = typing.get_origin(option) or option
        if base is bool and isinstance(value, bool):
            return value
        if base in (int, float) and not isinstance(value, bool):
            try:
                number = base(value)
            except (TypeError, ValueError):
                continue
            if base is int and isinstance(value, float) and number != value:
                continue
            return number
        if base is str and isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        if base is dict and isinstance(value, dict):
            return dict(value)
        if base is list and isinstance(value, (list, int, str)) and not isinstance(value, bool):
            return list(value) if isinstance(value, list) else [value]
    raise ConfigError(f"{where}: {value!r} is not a valid {getattr(hint, '__name__', hint)}")


def load_config(cls: type[C], path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> C:
    """`cls()` updated from the YAML file at `path` (if any) and then from `key=value` overrides, validated."""
    config = cls()
    if path is not None:
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read config {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a config file is a mapping of keys to values")
        for key, value in data.items():
            _set(config, str(key), value, str(path))
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not key=value")
        _set(config, key.strip(), yaml.safe_load(raw), f"override {item!r}")
    apply_variant_defaults(config)
    validate(config)
    return config


def apply_variant_defaults(config: Any) -> None:
    """Fill the unset perception settings of an RL config from its variant (explicit values stay)."""
    if not isinstance(config, RLConfig) or config.variant not in VARIANTS:
        return
    defaults = {"beta": 0.0, "rho": 0.0, "estimator": "exact", "entropy_coef": 0.0, "mask": "element",
                **VARIANTS[config.variant].defaults}
    for key, value in defaults.items():
        if getattr(config.perception, key) is None:
            setattr(config.perception, key, value)


def validate(config: Any) -> None:
    """Raise ConfigError for values outside their allowed sets or ranges (training stages; others check themselves)."""
    if not isinstance(config, TrainConfig):
        return
    checks: list[tuple[bool, str]] = [
        (config.prompts_per_step >= 1 and config.micro_batch_prompts >= 1,
         "prompts_per_step and micro_batch_prompts must be >= 1"),
        (config.lr > 0, "lr must be positive"),
        (config.resume in ("auto", "never") or Path(config.resume).is_dir(),
         f"resume must be auto, never or an existing checkpoint folder, got {config.resume!r}"),
    ]
    if isinstance(config, RLConfig):
        checks += [
            (config.variant in VARIANTS, f"variant must be one of {tuple(VARIANTS)}, got {config.variant!r}"),
            (config.num_generations >= 2, "num_generations (G) must be >= 2"),
            (config.loss_type in ("grpo", "dapo", "dr_grpo"), f"unknown loss_type {config.loss_type!r}"),
            (config.scale_rewards in ("group", "batch", "none"), f"unknown scale_rewards {config.scale_rewards!r}"),
            (config.ref_kl_estimator in ("k1", "k3"), "ref_kl_estimator must be k1 or k3"),
            (config.perception.estimator != "k1",
             "perception.estimator k1 is now k1_authors: its gradient does not depend on the masked input "
             "(docs/training.md); the default is exact"),
            (config.perception.estimator in PERCEPTION_ESTIMATORS,
             f"perception.estimator must be one of {PERCEPTION_ESTIMATORS}, got {config.perception.estimator!r}"),
            (config.perception.mask in MASK_STYLES,
             f"perception.mask must be one of {MASK_STYLES}, got {config.perception.mask!r}"),
            (config.perception.rho is not None and 0.0 <= config.perception.rho <= 1.0,
             "perception.rho must be in [0, 1]"),
            (config.perception.chunk_size >= 1, "perception.chunk_size must be >= 1"),
            (0.0 <= config.rewards.delta < 1.0, "rewards.delta must be in [0, 1)"),
            (config.rewards.preset in ("paper", "code"), f"unknown rewards.preset {config.rewards.preset!r}"),
            (config.rollout.engine in ("hf", "vllm"),
             f"rollout.engine must be hf or vllm, got {config.rollout.engine!r}"),
            (0.0 < config.rollout.gpu_memory_utilization <= 1.0, "rollout.gpu_memory_utilization must be in (0, 1]"),
            (config.rollout.max_model_len is None or config.rollout.max_model_len > config.max_new_tokens,
             "rollout.max_model_len must exceed max_new_tokens (it holds the prompt and the completion)"),
        ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


def to_dict(config: Any) -> dict[str, Any]:
    """The config as plain data (for checkpoints and the metrics header)."""
    return dataclasses.asdict(config)
