"""The RL variants, one row each: the OPPO paper's ablation (§6.2), PAPO at its published settings, and the
falsification controls of OPPO's perception term.

A variant fixes the perception mode (which masked copies, which tokens), whether the cue rewards (R_omni) are on,
how its tokens are routed, and the defaults of the perception settings; a setting given explicitly in a config file
or on the command line wins over the variant's default.
"""

from __future__ import annotations

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
class Variant:
    """One RL row: perception mode (`none`, `papo`: one copy with video and audio masked, `papo_dual`: one copy per
    modality, both on every completion token, `oppo`: one copy per modality on the tokens routed to it), cue rewards
    on or off, token routing (`cues`, or `swapped`: each routed clause goes to the other modality's copy) and the
    perception defaults."""

    name: str
    title: str
    mode: str
    cue_rewards: bool
    perception: dict[str, Any] = field(default_factory=dict)
    routing: str = "cues"


VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("baseline", "GRPO baseline (acc + fmt)", "none", False),
    Variant("romni", "+ R_omni", "none", True),
    Variant("papo", "PAPO (published settings)", "papo", False, PAPO_PERCEPTION),
    Variant("papo_dual", "PAPO-dual (published settings)", "papo_dual", False, PAPO_PERCEPTION),
    Variant("romni_papo", "+ R_omni + PAPO (OPPO's settings)", "papo", True, OPPO_PERCEPTION),
    Variant("romni_papo_dual", "+ R_omni + PAPO-dual (OPPO's settings)", "papo_dual", True, OPPO_PERCEPTION),
    Variant("oppo", "OPPO (R_omni + J_omni)", "oppo", True, OPPO_PERCEPTION),
    Variant("oppo_rho0", "OPPO, ρ = 0 (control: masked = full)", "oppo", True, {**OPPO_PERCEPTION, "rho": 0.0}),
    Variant("oppo_shuffled", "OPPO, routing swapped (control)", "oppo", True, OPPO_PERCEPTION, "swapped"),
)}
# the OPPO paper's ablation rows, in the order of its table (the PAPO rows of that table are `romni_papo*` here)
PAPER_ROWS = ("baseline", "romni", "romni_papo", "romni_papo_dual", "oppo")
CONTROLS = ("oppo_rho0", "oppo_shuffled")
