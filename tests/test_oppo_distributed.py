"""Two processes (gloo on CPU) through `accelerate launch`: 2 RL steps, gradients synchronised across processes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from oppo_train.cli import preset_dir

SCRIPT = """
import json, sys, torch
from oppo_train.config import RLConfig, load_config
from oppo_train.rl import RLTrainer

def length(prompts, completions, **_):
    return [len(c) / 50 for c in completions]

trainer = RLTrainer(load_config(RLConfig, None, sys.argv[2:]), extra_rewards={"length": length})
trainer.train()
flat = torch.cat([p.detach().reshape(-1) for p in trainer.unwrapped.parameters()])
sums = trainer.accelerator.gather(torch.stack([flat.sum(), (flat * flat).sum()]).reshape(1, 2))
if trainer.accelerator.is_main_process:
    json.dump({"world": trainer.world, "type": trainer.accelerator.distributed_type.value,
               "sums": sums.tolist()}, open(sys.argv[1], "w"))
trainer.close()
"""


def test_accelerate_launch_two_cpu_processes(tmp_path, session_cache):
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or shutil.which("accelerate")
    if accelerate is None:
        pytest.skip("needs the [train] extra (accelerate)")
    from mepbench.models.tiny_omni import ensure_tiny_omni
    from mepbench.tasks.base import TaskContext
    from mepbench.tasks.loaders import load_mep_synth

    ensure_tiny_omni(session_cache)  # built once here, not raced by the two processes
    load_mep_synth(TaskContext(data_root=None, cache_dir=session_cache), n=4)
    script = tmp_path / "train_two.py"
    script.write_text(textwrap.dedent(SCRIPT))
    out = tmp_path / "result.json"
    run = tmp_path / "run"
    args = ["variant=oppo", "data.n=4", "max_steps=2", "prompts_per_step=4", "num_generations=2", "max_new_tokens=12",
            "rewards.embedder=exact", "rewards.weights={accuracy: 1, format: 1, omni: 0.5, length: 1}", "lr=1e-3",
            f"output_dir={run}", f"cache_dir={session_cache}", "resume=never", "checkpoint_every=1"]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run([accelerate, "launch", "--config_file", str(preset_dir() / "accelerate" / "cpu_ddp.yaml"),
                           "--main_process_port", "0", str(script), str(out), *args],
                          env=env, capture_output=True, text=True, check=False, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["world"] == 2 and result["type"] == "MULTI_CPU"
    (s0, q0), (s1, q1) = result["sums"]
    assert s0 == s1 and q0 == q1  # identical weights on both processes after 2 synchronised steps
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and all(r["grad_norm"] > 0 for r in rows)
    state = json.loads((run / "checkpoints" / "step-000002" / "trainer_state.json").read_text())
    assert state["processes"] == 2
    assert {p.name for p in (run / "checkpoints" / "step-000002").glob("random_states_*.pkl")} == {
        "random_states_0.pkl", "random_states_1.pkl"}
