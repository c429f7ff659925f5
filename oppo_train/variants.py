"""The RL variants, one row each: the OPPO paper's ablation (§6.2), PAPO at its published settings, and the
falsification controls of OPPO's perception term.

A variant is one object here: its perception strategy (which masked copies, on which tokens), whether the cue rewards
(R_omni) are on, and the defaults of the perception settings; a setting given explicitly in a config file or on the
command line wins over the variant's default. The trainer asks the strategy and never tests a variant's name, so a new
variant, even one with a new token selection, is an edit of this file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# OPPO (oppo-paper.md §4–5): β 8e-3, ρ 0.7 element-wise zeroing of the processor features, η 3e-4. The estimator is
# the exact KL(full ‖ masked) over the vocabulary, whose gradient is that of the divergence the paper maximises; the
# authors' code uses k1, whose gradient does not depend on the masked pass (`k1_authors`, docs/training.md).
OPPO_PERCEPTION = {"beta": 8e-3, "rho": 0.7, "estimator": "exact", "entropy_coef": 3e-4, "mask": "element"}
# PAPO (Wang et al., arXiv 2507.06448 v5; Appendix C, Table 6, PAPO_G-7B): γ = 0.02 on KL_prcp estimated with k3
# (the official code's `low_var_kl`), Double Entropy η₁ = η₂ = 0.05 (η₂ multiplies the masked branch's entropy, which
# has no gradient: the masked pass is detached in the official code), random masking of 14-px patches blackened with
# probability 0.6 (§3.2, Appendix G.1; 0.6 best in the mask-ratio ablation). KL_prcp on every completion token.
PAPO_PERCEPTION = {"beta": 0.02, "rho": 0.6, "estimator": "k3", "entropy_coef": 0.05, "mask": "patch"}


@dataclass(frozen=True)
class Perception:
    """A variant's perception term as a strategy: which masked copies get a no-grad pass (the modality sets masked in
    each) and on which tokens each copy is compared with the full input: every completion token (PAPO), or the tokens
    of the clauses cue routing gives its modality (OPPO), optionally swapped between the two (the routing control)."""

    name: str
    copies: tuple[tuple[str, ...], ...] = ()
    routed: bool = False
    swapped: bool = False

    def token_masks(self, completion_mask: Any, routes: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Copy name (`video`, `audio`, `video+audio`) → the (B, T) boolean tokens its KL is taken on; `routes` gives
        the routed T_V / T_A and is called only by a routed strategy."""
        from oppo_train.core.perception import copy_name  # torch: loaded only where a trainer runs

        if not self.routed:
            return {copy_name(modalities): completion_mask.bool() for modalities in self.copies}
        masks = routes()
        return {"video": masks["audio"], "audio": masks["video"]} if self.swapped else masks


NONE = Perception("none")
PAPO = Perception("papo", (("video", "audio"),))  # PAPO V0: one copy with video and audio masked together
PAPO_DUAL = Perception("papo_dual", (("video",), ("audio",)))  # V1: one copy per modality, every token
OPPO = Perception("oppo", (("video",), ("audio",)), routed=True)  # each copy on the tokens routed to its modality
OPPO_SWAPPED = Perception("oppo_swapped", OPPO.copies, routed=True, swapped=True)


@dataclass(frozen=True)
class Variant:
    """One RL row: its perception strategy, whether the cue rewards (R_omni) are on, and the defaults of the
    perception settings."""

    name: str
    title: str
    perception: Perception
    cue_rewards: bool
    defaults: dict[str, Any] = field(default_factory=dict)


VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("baseline", "GRPO baseline (acc + fmt)", NONE, False),
    Variant("romni", "+ R_omni", NONE, True),
    Variant("papo", "PAPO (published settings)", PAPO, False, PAPO_PERCEPTION),
    Variant("papo_dual", "PAPO-dual (published settings)", PAPO_DUAL, False, PAPO_PERCEPTION),
    Variant("romni_papo", "+ R_omni + PAPO (OPPO's settings)", PAPO, True, OPPO_PERCEPTION),
    Variant("romni_papo_dual", "+ R_omni + PAPO-dual (OPPO's settings)", PAPO_DUAL, True, OPPO_PERCEPTION),
    Variant("oppo", "OPPO (R_omni + J_omni)", OPPO, True, OPPO_PERCEPTION),
    Variant("oppo_rho0", "OPPO, ρ = 0 (control: masked = full)", OPPO, True, {**OPPO_PERCEPTION, "rho": 0.0}),
    Variant("oppo_shuffled", "OPPO, routing swapped (control)", OPPO_SWAPPED, True, OPPO_PERCEPTION),
)}
# the OPPO paper's ablation rows, in the order of its table (the PAPO rows of that table are `romni_papo*` here)
PAPER_ROWS = ("baseline", "romni", "romni_papo", "romni_papo_dual", "oppo")
CONTROLS = ("oppo_rho0", "oppo_shuffled")
