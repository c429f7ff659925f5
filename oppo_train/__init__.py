"""oppo_train: GRPO-style RL with the Omni-Perception Reward and Loss (OPPO) and its ablations, for omni-modal
emotion reasoners. Rewards are mepbench's scorers; the math is in `oppo_train.core` (plain torch); the trainers run
on accelerate (single process, DDP, FSDP2, DeepSpeed). The trainers load lazily (they import accelerate and
transformers)."""

from __future__ import annotations

import importlib
from typing import Any

from oppo_train.config import (
    ConfigError,
    DataConfig,
    ModelConfig,
    PerceptionConfig,
    RewardConfig,
    RLConfig,
    SFTConfig,
    load_config,
)
from oppo_train.rewards import (
    PRESETS,
    CueScorer,
    RewardError,
    WeightedReward,
    build_rewards,
    compute_rewards,
)
from oppo_train.variants import VARIANTS, Variant

_LAZY = {"RLTrainer": "oppo_train.rl", "Rollout": "oppo_train.rl", "SFTTrainer": "oppo_train.sft",
         "TrainingError": "oppo_train.engine"}


def __getattr__(name: str) -> Any:
    """The trainer classes, imported on first use."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'oppo_train' has no attribute {name!r}")


__all__ = [
    "PRESETS", "VARIANTS", "ConfigError", "CueScorer", "DataConfig", "ModelConfig", "PerceptionConfig",
    "RLConfig", "RLTrainer", "RewardConfig", "RewardError", "Rollout", "SFTConfig", "SFTTrainer", "TrainingError",
    "Variant", "WeightedReward", "build_rewards", "compute_rewards", "load_config",
]
