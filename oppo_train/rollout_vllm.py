"""vLLM rollouts for the RL stage: an in-process vLLM engine per training process samples the G completions of each
prompt, and the policy's weights are pushed into it before a step's rollout whenever they changed since the last push
(the "colocate" mode of TRL's GRPOTrainer; verl's hybrid engine).

- Prompts are built as mepbench's vllm backend builds them (`mepbench.backends.vllm_inputs`), driven by the policy's
  own chat adapter, so vLLM sees the prompt text the trainer tokenises and the decoded media as `multi_modal_data`.
- Sampling: `SamplingParams(n=G, ...)` with the config's temperature, top-p, top-k and max_new_tokens, a seed per
  prompt, the policy's end-of-turn ids as stop tokens, and the media placeholder/marker tokens banned (`bad_words`
  sets their logits to -inf, as transformers' `suppress_tokens` does).
- Weight sync: vLLM's in-place reload (`Worker.reload_weights` through `LLM.collective_rpc`, which also re-runs each
  layer's post-load processing), fed the policy's parameters one full tensor at a time (gathered under FSDP2 and
  ZeRO-3), then the prefix cache is reset, since its KV blocks were computed with the old weights.
- The engine core runs in the trainer's process (`VLLM_ENABLE_V1_MULTIPROCESSING=0`), so neither the weights nor the
  reload call cross a process boundary. Under N training processes each keeps its own engine (tensor parallel size
  1) on its own device: vLLM's `external_launcher` executor joins the launcher's processes; no group is made here.

The completions' sampling log-probs are not used: the trainer recomputes the old-policy log-probs with its own forward.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mepbench.backends import build_engine_prompt, media_limits
from mepbench.backends.adapters import ChatAdapter
from mepbench.types import Request
from oppo_train.config import RLConfig

# Full Qwen2.5-Omni checkpoints are loaded as their thinker with the `thinker.` prefix stripped (mepbench's
# QwenOmniAdapter); vLLM loads the whole checkpoint and expects the prefix back.
CHECKPOINT_PREFIX = {"qwen2_5_omni": "thinker."}


def engine_args(config: RLConfig, model_path: Path, limits: dict[str, int], *, seed: int,
                distributed: bool) -> dict[str, Any]:
    """Keyword arguments of `vllm.LLM` from the `rollout` section (dtype defaults to the policy's)."""
    r = config.rollout
    args: dict[str, Any] = {"model": str(model_path), "dtype": r.dtype or config.model.dtype, "seed": seed,
                            "gpu_memory_utilization": r.gpu_memory_utilization, "enforce_eager": r.enforce_eager,
                            "enable_sleep_mode": r.enable_sleep_mode}
    if r.max_model_len is not None:
        args["max_model_len"] = r.max_model_len
    if limits:
        args["limit_mm_per_prompt"] = limits
    if distributed:
        args["distributed_executor_backend"] = "external_launcher"
    return args


def full_parameters(model: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """Every parameter of `model` as a full tensor, one at a time: FSDP2 shards (DTensors) are all-gathered, ZeRO-3
    partitions gathered and copied, plain parameters passed as they are. Under FSDP2 / ZeRO-3 this is a collective:
    every process must consume the whole iterator."""
    for name, param in model.named_parameters():
        if hasattr(param, "full_tensor"):
            yield name, param.full_tensor().detach()
        elif hasattr(param, "ds_id"):
            import deepspeed

            with deepspeed.zero.GatheredParameters([param]):
                full = param.data.detach().clone()
            yield name, full
        else:
            yield name, param.detach()


class VLLMRollout:
    """A vLLM engine on the policy checkpoint: `generate` samples G completions per prompt, `sync_weights` loads the
    policy's current weights into it. `synced_step` is the training step whose weights the engine holds."""

    def __init__(self, config: RLConfig, model_path: Path, adapter: ChatAdapter, *, rank: int = 0, world: int = 1):
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # the engine core in this process (see the module doc)
        from vllm import LLM

        self.config, self.adapter = config, adapter
        self.limits = media_limits(type(adapter))
        model_type = json.loads((model_path / "config.json").read_text())["model_type"]
        self.prefix = CHECKPOINT_PREFIX.get(model_type, "")
        self.bad_words = adapter.tokenizer.convert_ids_to_tokens(adapter.suppress_token_ids())
        self.synced_step = 0  # the engine starts from the checkpoint, i.e. the weights of step 0
        self.sleeping = False
        # seed + rank: the global RNG state that the trainer's own seeding leaves (vLLM seeds it in-process)
        self.llm = LLM(**engine_args(config, model_path, self.limits, seed=config.seed + rank, distributed=world > 1))

    def generate(self, requests: list[Request], seed: int) -> torch.Tensor:
        """G completions per request (rows in request order, G consecutive rows each) as token ids, right-padded with
        the pad id; a completion ends with its end-of-turn token, or after max_new_tokens. The G completions of
        request k are seeded with seed + k·G, seed + k·G + 1, …"""
        from vllm import SamplingParams

        c, g = self.config, self.config.num_generations
        prompts = [build_engine_prompt(self.adapter, r, self.limits).as_vllm() for r in requests]
        params = [SamplingParams(n=g, temperature=c.temperature, top_p=c.top_p, top_k=c.top_k,
                                 max_tokens=c.max_new_tokens, seed=(seed + k * g) % 2 ** 63,
                                 stop_token_ids=self.adapter.eos_token_ids(), bad_words=self.bad_words or None,
                                 detokenize=False) for k in range(len(prompts))]
        self._wake()
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        if c.rollout.enable_sleep_mode:
            self.llm.sleep(level=1)  # weights to CPU, KV cache dropped: the memory is the update's until next rollout
            self.sleeping = True
        rows = [list(o.token_ids) for out in outputs for o in sorted(out.outputs, key=lambda o: o.index)]
        width = max([1, *map(len, rows)])
        pad = self.adapter.pad_token_id()
        return torch.tensor([row + [pad] * (width - len(row)) for row in rows], dtype=torch.long)

    def sync_weights(self, model: nn.Module, step: int) -> None:
        """Load `model`'s parameters (the unwrapped policy model; a collective under FSDP2 / ZeRO-3, so every process
        calls this at the same step) into the engine in place, reset the prefix cache and record `step`."""
        self._wake()
        weights = ((self.prefix + name, tensor) for name, tensor in full_parameters(model))
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights, "is_checkpoint_format": True})
        if not self.llm.reset_prefix_cache():
            raise RuntimeError("vLLM could not reset its prefix cache after the weight sync")
        self.synced_step = step

    def _wake(self) -> None:
        """Bring weights and KV cache back after a sleep (sleep mode only)."""
        if self.sleeping:
            self.llm.wake_up()
            self.sleeping = False
