"""The OPPO core: plain-torch math shared by every engine (advantages, clipped surrogate, KL estimators, feature
masking, clause → token routing, the Omni-Perception Loss). Nothing here imports a trainer framework."""

from oppo_train.core.advantages import SCALES, group_advantages
from oppo_train.core.kl import SAMPLED, exact_kl, k1, k3, token_kl
from oppo_train.core.masking import MASKABLE, STYLES, black_patches, feature_keys, mask_features
from oppo_train.core.perception import JOINT, PerceptionLoss, copy_name, perception_loss
from oppo_train.core.policy_loss import LOSS_TYPES, aggregate, clipped_surrogate, masked_mean
from oppo_train.core.spans import label_masks, route_tokens, token_char_spans, token_labels

__all__ = [
    "JOINT", "LOSS_TYPES", "MASKABLE", "SAMPLED", "SCALES", "STYLES", "PerceptionLoss", "aggregate",
    "black_patches", "clipped_surrogate", "copy_name", "exact_kl", "feature_keys", "group_advantages", "k1", "k3",
    "label_masks", "mask_features", "masked_mean", "perception_loss", "route_tokens",
    "token_char_spans", "token_kl", "token_labels",
]
