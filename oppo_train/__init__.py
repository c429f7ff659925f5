"""oppo_train: GRPO-style RL with the Omni-Perception Reward and Loss (rewards come from mepbench.scoring)."""
