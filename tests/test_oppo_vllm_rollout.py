"""The RL trainer's vLLM rollouts (`rollout.engine: vllm`) on a REAL vLLM engine (the CPU build, in .venv-vllm): the
tiny Qwen2 text model on mep-synth prompts (media parts dropped). After a training step and `sync_weights`, vLLM's
greedy tokens and log-probs equal the transformers policy's; seeded rollouts repeat; RL steps run, change the weights
and sync once per changed step; media placeholder tokens are never sampled.

vLLM cannot share the main venv (it pins an older transformers), so in the main venv `test_in_the_vllm_venv` runs
this file with `.venv-vllm/bin/python -m pytest` (create that venv with scripts/setup-vllm-venv.sh; without it the
test skips, or fails under MEPBENCH_REQUIRE_VLLM=1). Where vLLM is importable, the tests run directly.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from conftest import unavailable
from mepbench.backends.vllm_inputs import build_engine_prompt
from mepbench.models.tiny_text import ensure_tiny_text
from mepbench.tasks.base import TaskContext
from mepbench.tasks.loaders import load_mep_synth
from oppo_train.cli import preset_dir
from oppo_train.config import ConfigError, RLConfig, load_config
from oppo_train.metrics import read_metrics
from oppo_train.rl import RLTrainer
from oppo_train.rollout_vllm import engine_args

HAS_VLLM = importlib.util.find_spec("vllm") is not None
ROOT = Path(__file__).resolve().parents[1]
THIS = Path(__file__).resolve().relative_to(ROOT).as_posix()
VLLM_VENV = Path(os.environ.get("MEPBENCH_VLLM_VENV", ROOT / ".venv-vllm"))
ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
G = 4
CONFIG = ["data.n=4", "prompts_per_step=2", "micro_batch_prompts=1", f"num_generations={G}", "max_new_tokens=16",
          "lr=1e-2", "resume=never", "checkpoint_every=0", "rewards.embedder=exact",
          "rewards.weights={accuracy: 1.0, format: 1.0, omni: 0.5, length: 1.0}",
          "rollout.engine=vllm", "rollout.max_model_len=1024", "rollout.enforce_eager=true"]
needs_vllm = pytest.mark.skipif(not HAS_VLLM, reason="needs vLLM; test_in_the_vllm_venv runs these in .venv-vllm")


def test_rollout_config_is_validated_and_becomes_engine_args(tmp_path):
    config = load_config(RLConfig, None, ["rollout.engine=vllm", "rollout.max_model_len=2048", "model.dtype=bfloat16"])
    assert (config.rollout.engine, config.rollout.max_model_len, config.rollout.dtype) == ("vllm", 2048, None)
    assert load_config(RLConfig).rollout.engine == "hf"
    args = engine_args(config, tmp_path, {"video": 1}, seed=7, distributed=True)
    assert args == {"model": str(tmp_path), "dtype": "bfloat16", "seed": 7, "gpu_memory_utilization": 0.3,
                    "enforce_eager": False, "enable_sleep_mode": False, "max_model_len": 2048,
                    "limit_mm_per_prompt": {"video": 1}, "distributed_executor_backend": "external_launcher"}
    single = engine_args(load_config(RLConfig, None, ["rollout.dtype=float32"]), tmp_path, {}, seed=0,
                         distributed=False)
    assert single["dtype"] == "float32" and not {"max_model_len", "limit_mm_per_prompt",
                                                  "distributed_executor_backend"} & set(single)
    for bad in ("rollout.engine=sglang", "rollout.gpu_memory_utilization=0", "rollout.max_model_len=512",
                "rollout.tensor_parallel_size=2"):
        with pytest.raises(ConfigError, match="rollout"):
            load_config(RLConfig, None, [bad])


@pytest.mark.vllm
@pytest.mark.skipif(HAS_VLLM, reason="vLLM is importable here, so the tests below run directly")
def test_in_the_vllm_venv():
    python = VLLM_VENV / "bin" / "python"
    if not python.exists():
        unavailable(f"vLLM venv not found at {VLLM_VENV}: create it with scripts/setup-vllm-venv.sh",
                    "MEPBENCH_REQUIRE_VLLM")
    done = subprocess.run([str(python), "-m", "pytest", THIS, "-q", "-p", "no:cacheprovider",
                           "--deselect", f"{THIS}::test_in_the_vllm_venv"], cwd=ROOT,
                          env={**os.environ, **ENV, "MEPBENCH_REQUIRE_VLLM": "1"}, capture_output=True, text=True,
                          timeout=900, check=False)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    everything_passed = re.fullmatch(r"\d+ passed, 1 deselected(, \d+ warnings?)? in .+", summary)  # nothing skipped or failed
    assert done.returncode == 0 and everything_passed, (done.stdout + done.stderr)[-6000:]


# -- inside the vLLM venv ---------------------------------------------------------------------------------------------


def length_reward(prompts, completions, **_):
    """Differs between completions, so that random-model groups get non-zero advantages."""
    return [len(c) / 50 for c in completions]


@pytest.fixture(scope="module")
def trainer(session_cache, tmp_path_factory):
    """One RL trainer, hence one vLLM engine, for the module."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in ENV.items():
            patch.setenv(key, value)
        model = ensure_tiny_text(session_cache)
        config = load_config(RLConfig, None, [*CONFIG, f"model.path={model}", f"cache_dir={session_cache}",
                                              f"output_dir={tmp_path_factory.mktemp('oppo-vllm') / 'run'}"])
        yield RLTrainer(config, extra_rewards={"length": length_reward})


def weights(t) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in t.unwrapped.model.state_dict().items()}


def greedy(t, sample, n: int = 12) -> tuple[list[int], list[int], list[float]]:
    """vLLM's greedy completion of a sample's training prompt: prompt ids, n token ids and their log-probs."""
    from vllm import SamplingParams

    prompt = build_engine_prompt(t.adapter, t.request(sample), t.vllm.limits).as_vllm()
    params = SamplingParams(temperature=0.0, max_tokens=n, ignore_eos=True, logprobs=0, detokenize=False)
    out = t.vllm.llm.generate([prompt], params, use_tqdm=False)[0]
    ids = list(out.outputs[0].token_ids)
    return list(out.prompt_token_ids), ids, [step[i].logprob for step, i in zip(out.outputs[0].logprobs, ids)]


def hf_scores(t, prompt: list[int], ids: list[int]) -> tuple[list[int], list[float]]:
    """The transformers policy's argmax token and log-prob of each of `ids` after `prompt`."""
    with torch.no_grad():
        logits = t.unwrapped.model(input_ids=torch.tensor([prompt + ids])).logits[0, len(prompt) - 1:-1]
    logp = logits.float().log_softmax(-1)
    return logp.argmax(-1).tolist(), logp.gather(-1, torch.tensor(ids)[:, None])[:, 0].tolist()


@needs_vllm
def test_weight_sync_makes_vllm_equal_the_trained_policy(trainer):
    t, sample = trainer, trainer.samples[0]
    t.vllm.sync_weights(t.unwrapped.model, t.step)
    prompt, before, logp_before = greedy(t, sample)
    assert prompt == t.prepared(sample).inputs["input_ids"][0].tolist()  # vLLM sees the prompt the trainer scores
    argmax, logp = hf_scores(t, prompt, before)
    assert argmax == before and logp == pytest.approx(logp_before, abs=1e-4)

    old = weights(t)
    t.train_step()  # one optimiser step, as the training loop runs it
    t.step += 1
    assert any(not torch.equal(old[k], v) for k, v in weights(t).items())
    _, stale, logp_stale = greedy(t, sample)
    assert (stale, logp_stale) == (before, logp_before)  # the update does not reach the engine by itself
    assert hf_scores(t, prompt, before)[1] != pytest.approx(logp_before, abs=1e-3)

    t.vllm.sync_weights(t.unwrapped.model, t.step)
    _, after, logp_after = greedy(t, sample)
    argmax, logp = hf_scores(t, prompt, after)
    assert argmax == after and logp == pytest.approx(logp_after, abs=1e-4)
    assert after != before or logp_after != pytest.approx(logp_before, abs=1e-3)


@needs_vllm
def test_seeded_vllm_rollouts_repeat(trainer):
    t, samples = trainer, trainer.samples[:2]
    first, again, other = t.generate(samples, 0), t.generate(samples, 0), t.generate(samples, 1)
    assert torch.equal(first.completion_ids, again.completion_ids) and first.texts == again.texts
    assert first.completion_ids.tolist() != other.completion_ids.tolist()
    rows = first.completion_ids.tolist()
    assert len(rows) == 2 * G and len({tuple(r) for r in rows[:G]}) > 1  # each of a prompt's G samples has its seed
    eos = set(t.adapter.eos_token_ids())
    for row, mask in zip(rows, first.completion_mask.tolist()):
        n = sum(mask)
        assert mask == [1] * n + [0] * (len(mask) - n)
        assert n in (t.config.max_new_tokens, len(row)) or row[n - 1] in eos
    assert first.texts == t.adapter.tokenizer.batch_decode(
        [r[:sum(m)] for r, m in zip(rows, first.completion_mask.tolist())], skip_special_tokens=True)


@needs_vllm
def test_rl_steps_with_vllm_rollouts_change_the_weights_and_sync_once_per_step(trainer, monkeypatch):
    t = trainer
    syncs: list[int] = []
    calls: list[int] = []
    sync, generate = t.vllm.sync_weights, t.vllm.generate

    def counted_sync(model, step):
        syncs.append(step)
        sync(model, step)

    def counted_generate(requests, seed):
        calls.append(len(requests))
        return generate(requests, seed)

    monkeypatch.setattr(t.vllm, "sync_weights", counted_sync)
    monkeypatch.setattr(t.vllm, "generate", counted_generate)
    start, stale = t.step, t.vllm.synced_step != t.step
    before = weights(t)
    monkeypatch.setattr(t.config, "max_steps", start + 2)
    t.train()
    assert t.step == start + 2 and t.vllm.synced_step == start + 1
    assert syncs == [start] * stale + [start + 1]  # only when the weights changed, not once per micro-batch
    assert calls == [1, 1, 1, 1]  # 2 steps x 2 micro-batches of one prompt, all sampled by vLLM
    changed = [k for k, v in weights(t).items() if not torch.equal(before[k], v)]
    assert changed
    rows = read_metrics(t.output_dir)
    assert [r["step"] for r in rows][-2:] == [start + 1, start + 2]
    assert all(r["advantage/abs_mean"] > 0 and r["reward/length"] > 0 for r in rows[-2:])


@needs_vllm
def test_placeholder_tokens_are_never_sampled(trainer):
    from vllm import SamplingParams

    t, model = trainer, trainer.unwrapped.model
    banned = t.adapter.suppress_token_ids()
    saved = weights(t)
    try:
        with torch.no_grad():  # logits of the placeholders (half +, half -) dwarf every other token's
            model.model.norm.weight.zero_()
            model.model.norm.weight[0] = 1.0
            model.lm_head.weight[banned] = 0.0
            model.lm_head.weight[banned[0::2], 0] = 1000.0
            model.lm_head.weight[banned[1::2], 0] = -1000.0
        t.vllm.sync_weights(model, t.step)
        prompt = build_engine_prompt(t.adapter, t.request(t.samples[0]), t.vllm.limits).as_vllm()
        free = t.vllm.llm.generate([prompt], SamplingParams(n=G, max_tokens=8, seed=0, detokenize=False),
                                   use_tqdm=False)[0]
        assert all(i in banned for o in free.outputs for i in o.token_ids)  # unsuppressed, only placeholders
        rollout = t.generate(t.samples[:2], 0)
        sampled = rollout.completion_ids[rollout.completion_mask.bool()].tolist()
        assert sampled and not set(sampled) & set(banned)
    finally:
        model.load_state_dict(saved)
        t.vllm.sync_weights(model, t.step)


TWO_PROCESSES = """
import json, sys
from test_oppo_vllm_rollout import greedy, hf_scores, length_reward
from oppo_train.config import RLConfig, load_config
from oppo_train.rl import RLTrainer

t = RLTrainer(load_config(RLConfig, None, sys.argv[2:]), extra_rewards={"length": length_reward})
t.train()
synced = t.vllm.synced_step
t.vllm.sync_weights(t.unwrapped.model, t.step)
prompt, ids, logp = greedy(t, t.samples[t.rank])
gap = max(abs(a - b) for a, b in zip(logp, hf_scores(t, prompt, ids)[1]))
json.dump({"world": t.world, "type": t.accelerator.distributed_type.value, "synced": synced, "gap": gap},
          open(f"{sys.argv[1]}.{t.rank}.json", "w"))
"""


@needs_vllm
@pytest.mark.slow
def test_two_processes_each_sync_their_own_engine(session_cache, tmp_path):
    """`accelerate launch` with 2 CPU processes (gloo): each keeps an engine (vLLM's external_launcher executor),
    syncs it when the weights changed, and after a final sync its log-probs equal that process's policy."""
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    assert accelerate, "the vLLM venv needs the [train] extra (scripts/setup-vllm-venv.sh installs it)"
    model = ensure_tiny_text(session_cache)  # built here, not raced by the two processes
    load_mep_synth(TaskContext(data_root=None, cache_dir=session_cache), n=4)
    script = tmp_path / "two.py"
    script.write_text(textwrap.dedent(TWO_PROCESSES))
    args = [*CONFIG, "max_steps=2", "num_generations=2", "max_new_tokens=8", f"model.path={model}",
            f"cache_dir={session_cache}", f"output_dir={tmp_path / 'run'}"]
    env = {**os.environ, **ENV, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    done = subprocess.run([accelerate, "launch", "--config_file", str(preset_dir() / "accelerate" / "cpu_ddp.yaml"),
                           "--main_process_port", "0", str(script), str(tmp_path / "out"), *args],
                          env=env, capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    results = [json.loads((tmp_path / f"out.{rank}.json").read_text()) for rank in (0, 1)]
    for result in results:
        assert (result["world"], result["type"], result["synced"]) == (2, "MULTI_CPU", 1)
        assert result["gap"] < 1e-4
