"""What the SFT and RL stages share: the accelerate setup, the policy and optimiser, the step order, checkpoints
with exact resume, non-finite guards and metrics.

Every random draw of a step is seeded from (seed, step, process), so a resumed run repeats the same samples, masks
and rollouts; a checkpoint holds weights, optimiser, scheduler, RNG states and the step (= the data position).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mepbench import default_cache_dir
from mepbench.types import Request, Sample, TextPart
from oppo_train.config import RLConfig, SFTConfig, to_dict
from oppo_train.data import build_request, load_samples, prompt_task, step_indices
from oppo_train.metrics import MetricsLogger
from oppo_train.policy import Policy, export_pretrained, load_adapter, resolve_model_path

STATE_FILE = "trainer_state.json"


class Recent:
    """A small least-recently-used cache of per-sample values (prepared inputs, prompts, targets): a step reuses
    them for its G rows and passes, while a whole dataset's media features would not fit in memory."""

    def __init__(self, size: int = 64):
        self.size = size
        self._items: OrderedDict[str, Any] = OrderedDict()

    def get(self, key: str, make: Callable[[], Any]) -> Any:
        """The cached value of `key`, made and stored on a miss."""
        if key in self._items:
            self._items.move_to_end(key)
        else:
            self._items[key] = make()
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return self._items[key]


class TrainingError(RuntimeError):
    """A step that cannot complete (non-finite loss, reward or gradient; a failed reward); weights are unchanged."""


def step_seed(seed: int, step: int, rank: int, *salt: int) -> int:
    """A 63-bit seed for one process's draw at one step (`salt` tells the draws of a step apart)."""
    state = np.random.SeedSequence([seed, step, rank, *salt]).generate_state(1, dtype=np.uint64)[0]
    return int(state % (2 ** 63))


class Engine:
    """Accelerator, policy, optimiser, scheduler, data and checkpoints; subclasses implement `train_step`."""

    stage = "train"

    def __init__(self, config: SFTConfig | RLConfig):
        from accelerate import Accelerator
        from accelerate.utils import set_seed

        self.config = config
        # Without CUDA, processes started by torchrun/accelerate's multi-process launcher join one gloo group on CPU.
        self.accelerator = Accelerator(step_scheduler_with_optimizer=False, cpu=not torch.cuda.is_available())
        self.rank, self.world = self.accelerator.process_index, self.accelerator.num_processes
        launched = int(os.environ.get("WORLD_SIZE", "1"))
        if launched != self.world:
            raise TrainingError(f"launched as {launched} processes but accelerate formed a group of {self.world}; "
                                "every process would train alone")
        for engine in ("FSDP", "DEEPSPEED"):
            asked = os.environ.get(f"ACCELERATE_USE_{engine}", "").lower() == "true"
            if asked and self.accelerator.distributed_type.value != engine:
                raise TrainingError(f"the accelerate config asks for {engine} but accelerate set up "
                                    f"{self.accelerator.distributed_type.value} (FSDP and DeepSpeed need GPUs)")
        if config.prompts_per_step % self.world:
            raise TrainingError(f"prompts_per_step={config.prompts_per_step} must be a multiple of the "
                                f"{self.world} processes")
        set_seed(config.seed + self.rank)
        if self.accelerator.distributed_type.value == "DEEPSPEED":
            self._configure_deepspeed()
        self.output_dir = Path(config.output_dir)
        self.cache_dir = Path(config.cache_dir) if config.cache_dir else default_cache_dir()
        self.model_path = resolve_model_path(config.model.path, self.cache_dir)
        self.task = prompt_task(config.data, self.cache_dir)
        self.samples: list[Sample] = self.training_rows(load_samples(config.data, self.cache_dir))
        if not self.samples:
            raise TrainingError("no training samples")
        self.adapter = load_adapter(config.model, self.cache_dir, str(self.accelerator.device))
        self.dtype = self.adapter.model.dtype
        trainable = [p for p in self.adapter.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)
        from transformers import get_scheduler

        scheduler = get_scheduler(config.lr_scheduler, optimizer, num_warmup_steps=config.warmup_steps,
                                  num_training_steps=self.total_steps)
        self.policy, self.optimizer, self.scheduler = self.accelerator.prepare(Policy(self.adapter.model), optimizer,
                                                                               scheduler)
        self.step = 0
        self.last_checkpoint: Path | None = None
        self.metrics = MetricsLogger(self.output_dir, enabled=self.accelerator.is_main_process,
                                     tensorboard=config.tensorboard, wandb=config.wandb,
                                     wandb_project=config.wandb_project, config=to_dict(config))
        self._prepared = Recent()

    def _configure_deepspeed(self) -> None:
        """DeepSpeed steps inside `backward`, so a step must be one micro-batch per process; its batch size is set."""
        per_process = self.config.prompts_per_step // self.world
        if self.config.micro_batch_prompts != per_process:
            raise TrainingError(f"under DeepSpeed a step is one micro-batch: set micro_batch_prompts={per_process} "
                                f"(prompts_per_step / processes)")
        rows = per_process * getattr(self.config, "num_generations", 1)
        self.accelerator.state.deepspeed_plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = rows

    # -- schedule and data -------------------------------------------------------------------------------------------

    def training_rows(self, samples: list[Sample]) -> list[Sample]:
        """The rows a stage trains on, from the loaded samples (the SFT stage adds probe rows)."""
        return samples

    @property
    def total_steps(self) -> int:
        """max_steps, or num_epochs over the data in steps of prompts_per_step."""
        if self.config.max_steps > 0:
            return self.config.max_steps
        return max(1, self.config.num_epochs * len(self.samples) // self.config.prompts_per_step)

    def local_samples(self, step: int) -> list[Sample]:
        """This process's share of the step's prompts."""
        indices = step_indices(len(self.samples), step, self.config.prompts_per_step, self.config.seed)
        share = len(indices) // self.world
        return [self.samples[i] for i in indices[self.rank * share:(self.rank + 1) * share]]

    def micro_batches(self, samples: list[Sample]) -> list[list[Sample]]:
        """The process's prompts in slices of micro_batch_prompts."""
        size = self.config.micro_batch_prompts
        return [samples[i:i + size] for i in range(0, len(samples), size)]

    def request(self, sample: Sample) -> Request:
        """The training prompt of a sample, without the media parts the policy's family cannot take (a text-only
        policy sees the subtitle and the question)."""
        request = build_request(self.task, sample)
        parts = type(self.adapter).parts
        return dataclasses.replace(request, messages=tuple(
            dataclasses.replace(m, content=tuple(p for p in m.content if isinstance(p, TextPart) or p.type in parts))
            for m in request.messages))

    def prepared(self, sample: Sample) -> Any:
        """The processor inputs of a sample's prompt (media decoded once while the sample is in use)."""
        return self._prepared.get(sample.id, lambda: self.adapter.prepare(self.request(sample)))

    @property
    def unwrapped(self) -> Policy:
        return self.accelerator.unwrap_model(self.policy)

    # -- guards ------------------------------------------------------------------------------------------------------

    def any_process(self, flag: bool) -> bool:
        """True when `flag` is set on any process (so that every process stops together)."""
        if self.world == 1:
            return flag
        return bool(self.accelerator.reduce(torch.tensor([float(flag)], device=self.accelerator.device), "sum") > 0)

    def fail(self, message: str) -> TrainingError:
        """The error for a stopped step, saying that the weights were not updated and where to resume from."""
        where = self.last_checkpoint or "none yet"
        self.optimizer.zero_grad(set_to_none=True)
        return TrainingError(f"step {self.step + 1}: {message}; the step was stopped before the weights changed "
                             f"(last good checkpoint: {where})")

    def check_finite(self, values: dict[str, float]) -> None:
        """Raise (on every process) when any of the named values is NaN or inf on any process."""
        bad = {k: v for k, v in values.items() if not math.isfinite(v)}
        if self.any_process(bool(bad)):
            detail = ", ".join(f"{k} = {v}" for k, v in bad.items()) or "a non-finite value on another process"
            raise self.fail(f"non-finite {detail}")

    # -- checkpoints -------------------------------------------------------------------------------------------------

    def checkpoints(self) -> list[Path]:
        """Complete checkpoints of this run, oldest first."""
        root = self.output_dir / "checkpoints"
        found = [p for p in root.glob("step-*") if (p / STATE_FILE).is_file()] if root.is_dir() else []
        return sorted(found, key=lambda p: int(p.name.split("-")[1]))

    def save_checkpoint(self) -> Path:
        """Weights, optimiser, scheduler, RNG states and the step; written to a temporary folder and renamed, so a
        kill mid-save never leaves a checkpoint that looks complete."""
        final = self.output_dir / "checkpoints" / f"step-{self.step:06d}"
        tmp = final.with_name(final.name + ".tmp")
        if self.accelerator.is_main_process and tmp.exists():
            shutil.rmtree(tmp)
        self.accelerator.wait_for_everyone()
        self.accelerator.save_state(str(tmp), safe_serialization=True)
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            state = {"step": self.step, "stage": self.stage, "processes": self.world,
                     "distributed_type": self.accelerator.distributed_type.value, "time": time.time(),
                     "config": to_dict(self.config)}
            (tmp / STATE_FILE).write_text(json.dumps(state, indent=2, default=str))
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
            for old in self.checkpoints()[:-self.config.keep_checkpoints or None]:
                shutil.rmtree(old, ignore_errors=True)
        self.accelerator.wait_for_everyone()
        self.last_checkpoint = final
        return final

    def resume(self) -> None:
        """Load the checkpoint named by `resume` (auto: the latest complete one, if any)."""
        if self.config.resume == "never":
            return
        found = self.checkpoints() if self.config.resume == "auto" else [Path(self.config.resume)]
        if not found:
            return
        path = found[-1]
        state = json.loads((path / STATE_FILE).read_text())
        if state.get("stage") != self.stage:
            raise TrainingError(f"{path} is a {state.get('stage')} checkpoint, not {self.stage}")
        self.accelerator.load_state(str(path))
        self.step, self.last_checkpoint = int(state["step"]), path
        self.metrics.truncate(self.step)

    # -- the loop ----------------------------------------------------------------------------------------------------

    def train_step(self) -> dict[str, Any]:
        """One optimiser step; returns its metrics."""
        raise NotImplementedError

    def optimizer_step(self) -> float:
        """Clip, check the gradient norm is finite, step optimiser and scheduler; returns the norm (NaN where the
        engine clips by itself, as DeepSpeed does)."""
        clipped = self.accelerator.clip_grad_norm_(self.policy.parameters(), self.config.max_grad_norm)
        norm = float("nan") if clipped is None else float(clipped)
        if self.any_process(clipped is not None and not math.isfinite(norm)):
            raise self.fail(f"non-finite gradient norm {norm}")
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return norm

    def train(self) -> Path | None:
        """Resume if asked, run to `total_steps` with checkpoints every `checkpoint_every`, export the final weights."""
        self.resume()
        try:
            while self.step < self.total_steps:
                start = time.perf_counter()
                metrics = self.train_step()
                self.step += 1
                metrics.update(step_time=time.perf_counter() - start, lr=float(self.scheduler.get_last_lr()[0]))
                self.metrics.log(self.step, metrics)
                every = self.config.checkpoint_every
                if (every and self.step % every == 0) or self.step == self.total_steps:
                    self.save_checkpoint()
        finally:
            self.metrics.close()
        return self.export()

    def close(self) -> None:
        """Leave the process group cleanly (gloo's threads can abort the interpreter's exit otherwise)."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            self.accelerator.wait_for_everyone()
            dist.destroy_process_group()

    def export(self) -> Path | None:
        """The final weights in transformers format under `output_dir/final` (main process)."""
        self.accelerator.wait_for_everyone()
        state = self.accelerator.get_state_dict(self.policy)  # a collective under FSDP/ZeRO-3
        if not self.accelerator.is_main_process:
            return None
        thinker = {k.removeprefix("model."): v for k, v in state.items()}
        return export_pretrained(self.unwrapped.model, self.model_path, self.output_dir / "final", thinker)
