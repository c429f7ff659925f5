"""Stage 1 (paper §5): supervised fine-tuning on `<think>` reasoning + `<answer>` labels, token-mean cross-entropy."""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from mepbench.types import Sample
from oppo_train.config import ConfigError, SFTConfig
from oppo_train.data import describe_rows, probe_rows, sft_target
from oppo_train.engine import Engine, Recent
from oppo_train.policy import to_device


class SFTTrainer(Engine):
    """Teacher-forced training of the policy on each sample's reference answer."""

    stage = "sft"

    def __init__(self, config: SFTConfig):
        super().__init__(config)
        self._targets = Recent()

    def training_rows(self, samples: list[Sample]) -> list[Sample]:
        """The samples (unless `reasoning_rows` is off) plus `probes_per_clip` yes/no probe rows per clip and the
        describe rows of `describe_share` of the clips."""
        extra = (probe_rows(samples, self.config.probes_per_clip, self.config.seed)
                 + describe_rows(samples, self.config.describe_share, self.config.seed))
        if not self.config.reasoning_rows and not extra:
            raise ConfigError("reasoning_rows=false needs probes_per_clip > 0 or describe_share > 0")
        return (samples if self.config.reasoning_rows else []) + extra

    def target_ids(self, sample: Sample) -> list[int]:
        """Token ids of the reference answer followed by the end-of-turn token."""
        def make() -> list[int]:
            ids = self.adapter.tokenizer(sft_target(sample), add_special_tokens=False).input_ids
            return list(ids) + [self.adapter.eos_token_ids()[0]]

        return self._targets.get(sample.id, make)

    def batch(self, samples: list[Sample]) -> tuple[dict[str, Any], torch.Tensor, torch.Tensor]:
        """Collated prompts and right-padded targets with their mask, on the device."""
        device = self.accelerator.device
        inputs = to_device(self.adapter.collate([self.prepared(s) for s in samples]), device, self.dtype)
        targets = [self.target_ids(s) for s in samples]
        width = max(len(t) for t in targets)
        pad = self.adapter.pad_token_id()
        ids = torch.tensor([t + [pad] * (width - len(t)) for t in targets], device=device)
        mask = torch.tensor([[1] * len(t) + [0] * (width - len(t)) for t in targets], device=device)
        return inputs, ids, mask

    def train_step(self) -> dict[str, Any]:
        """Σ NLL over every target token of the step / the step's token count (all processes), then one update."""
        samples = self.local_samples(self.step)
        local_tokens = float(sum(len(self.target_ids(s)) for s in samples))
        total = float(self.accelerator.reduce(torch.tensor([local_tokens], device=self.accelerator.device), "sum"))
        micro = self.micro_batches(samples)
        nll_sum = 0.0
        for k, chunk in enumerate(micro):
            inputs, ids, mask = self.batch(chunk)
            sync = contextlib.nullcontext() if k == len(micro) - 1 else self.accelerator.no_sync(self.policy)
            with sync:
                scores = self.policy(inputs, ids, mask)
                nll = -(scores.logp * mask).sum()
                self.check_finite({"sft loss": float(nll.detach())})
                self.accelerator.backward(nll / total * self.world)
            nll_sum += float(nll.detach())
        norm = self.optimizer_step()
        loss = float(self.accelerator.reduce(torch.tensor([nll_sum], device=self.accelerator.device), "sum")) / total
        return {"loss": loss, "tokens": total, "grad_norm": norm}
