"""The `oppo-train` command end to end in subprocesses: a run killed with SIGKILL resumes bit-for-bit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KILLER = """
import os, signal

CALLS = [0]

def reward(prompts, completions, **_):
    CALLS[0] += 1
    if CALLS[0] == int(os.environ.get("KILL_AT_CALL", "0")):
        os.kill(os.getpid(), signal.SIGKILL)
    return [len(c) / 50 for c in completions]
"""


def run_cli(tmp_path: Path, cache: Path, out: str, kill_at: int | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    env.pop("KILL_AT_CALL", None)
    if kill_at:
        env["KILL_AT_CALL"] = str(kill_at)
    args = ["rl", "--config", "rl_tiny", "data.n=4", "max_steps=4", "prompts_per_step=2", "micro_batch_prompts=1",
            "num_generations=2", "max_new_tokens=12", "checkpoint_every=2", f"output_dir={tmp_path / out}",
            f"cache_dir={cache}", "rewards.extra={killer: 'oppo_killer:reward'}",
            "rewards.weights={accuracy: 1, format: 1, omni: 0.5, killer: 1}"]
    return subprocess.run([sys.executable, "-m", "oppo_train.cli", *args], env=env, capture_output=True, text=True,
                          check=False, timeout=300)


@pytest.mark.slow
def test_sigkill_then_resume_is_bit_exact(tmp_path, session_cache):
    from mepbench.models.tiny_omni import ensure_tiny_omni

    ensure_tiny_omni(session_cache)
    (tmp_path / "oppo_killer.py").write_text(textwrap.dedent(KILLER))
    straight = run_cli(tmp_path, session_cache, "straight")
    assert straight.returncode == 0, straight.stderr[-2000:]
    killed = run_cli(tmp_path, session_cache, "killed", kill_at=5)  # step 3, first micro-batch (2 calls per step)
    assert killed.returncode == -signal.SIGKILL
    done = sorted(p.name for p in (tmp_path / "killed" / "checkpoints").iterdir())
    assert done == ["step-000002"] and not (tmp_path / "killed" / "final").exists()
    resumed = run_cli(tmp_path, session_cache, "killed")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    want = (tmp_path / "straight" / "final" / "model.safetensors").read_bytes()
    assert (tmp_path / "killed" / "final" / "model.safetensors").read_bytes() == want

    def rows(name):
        lines = (tmp_path / name / "metrics.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(x).items() if not k.startswith(("time/", "step_time"))} for x in lines]

    assert rows("killed") == rows("straight") and [r["step"] for r in rows("killed")] == [1, 2, 3, 4]
