"""The miniature OPPO reproduction on mep-synth (paper §6.2 ablation, on CPU): tiny-omni → SFT → RL with each
variant from the same SFT checkpoint, budget and seed → `mepbench eval` of each on the eval split → leaderboard.

Every stage runs as its own `oppo-train` / `mepbench` process and leaves a `DONE` marker, so a killed run resumes
where it stopped (a half-finished stage resumes from its last checkpoint; evaluation from the response cache).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mepbench.models import INIT_RANGE
from oppo_train.config import ConfigError
from oppo_train.contrasts import PRIMARY, PRIMARY_BY_KEY
from oppo_train.variants import VARIANTS

DONE = "DONE"
CODE_DIR = Path(__file__).parent  # the checkout whose code the stages run


@dataclass
class ReproConfig:
    """The whole experiment: seeds, variants, the train split, the stage settings and where results go."""

    seeds: list[int] = field(default_factory=lambda: [0])
    variants: list[str] = field(default_factory=lambda: list(VARIANTS))
    model_size: str = "repro"
    train_n: int = 1000
    train_seed: int = 1  # the eval split is the mep-synth task's suite (seed 0): disjoint clips
    train_data: dict[str, Any] = field(default_factory=dict)  # more `data.` settings of both stages (decided_share…)
    balanced_init: bool = False  # start from tiny-omni's balanced build (towers' tokens at the text scale)
    init_range: float = INIT_RANGE  # tiny-omni's initial weight standard deviation
    # An optional alignment stage before SFT (`oppo-train sft reasoning_rows=false`: probe and describe rows only,
    # on its own `data.n` clips of the train suite); empty = none.
    align: dict[str, Any] = field(default_factory=dict)
    sft: dict[str, Any] = field(default_factory=dict)
    rl: dict[str, Any] = field(default_factory=dict)
    eval_task: str = "mep-synth"
    eval_batch_size: int = 16
    eval_limit: int | None = None
    work_dir: str = "runs/mini-repro"
    out_dir: str = "leaderboards/mini-repro"
    cache_dir: str | None = None
    # The pre-registered analysis (leaderboards/mini-repro/PREREGISTRATION.md): paired contrasts (row, against row)
    # on the primary metrics (oppo_train/contrasts.py), Holm-corrected over the whole family at `alpha`.
    primary: list[str] = field(default_factory=lambda: [p.key for p in PRIMARY])
    contrasts: list[list[str]] = field(default_factory=lambda: [["oppo", "baseline"], ["oppo", "romni"],
                                                                ["oppo", "oppo_rho0"], ["oppo", "oppo_shuffled"]])
    alpha: float = 0.05
    default_model: str = "oppo"  # the row whose first-seed checkpoint becomes `tiny-omni` (fixed in advance)
    install_default: bool = False  # copy that checkpoint into the package as the default `tiny-omni`


def check(config: ReproConfig, eval_seed: int) -> None:
    """Refuse settings that would leak the eval split into training or name unknown variants."""
    if config.train_seed == eval_seed:
        raise ConfigError(f"train_seed {config.train_seed} equals the eval suite's seed: the splits would overlap")
    unknown = [v for v in config.variants if v not in VARIANTS]
    if unknown:
        raise ConfigError(f"unknown variants {unknown}; choose from {tuple(VARIANTS)}")
    metrics = [m for m in config.primary if m not in PRIMARY_BY_KEY]
    if metrics:
        raise ConfigError(f"unknown primary metrics {metrics}; choose from {tuple(PRIMARY_BY_KEY)}")
    rows = {"sft", *VARIANTS}
    bad = [pair for pair in config.contrasts if len(pair) != 2 or not set(pair) <= rows]
    if bad:
        raise ConfigError(f"contrasts {bad} must each name two rows of {sorted(rows)}")


def overrides(settings: dict[str, Any]) -> list[str]:
    """`key=value` arguments for `oppo-train` from a flat or nested mapping (values as YAML)."""
    out = []
    for key, value in settings.items():
        if isinstance(value, dict):
            out += [f"{key}.{item}" for item in overrides(value)]
        else:
            out.append(f"{key}={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}")
    return out


class Experiment:
    """Runs the stages of every seed and writes the leaderboard."""

    def __init__(self, config: ReproConfig, log: Any = sys.stderr):
        from mepbench.tasks import builtin_spec_dir, read_spec

        self.config, self.log = config, log
        self.work = Path(config.work_dir)
        spec = read_spec(builtin_spec_dir() / f"{config.eval_task}.yaml")
        self.eval_suite = {"n": int(spec["dataset"]["n"]), "seed": int(spec["dataset"]["seed"])}
        check(config, self.eval_suite["seed"])
        self.timings: dict[str, float] = {}
        self.commits: dict[str, dict[str, Any] | None] = {}  # the code each stage ran with (mepbench's git_state)

    def _run(self, name: str, folder: Path, argv: list[str], expect: str) -> None:
        """Run one stage unless its DONE marker exists; time it; fail loudly with the stage's log when it exits
        non-zero or leaves no `expect` file."""
        if (folder / DONE).is_file():
            done = json.loads((folder / DONE).read_text())
            self.timings[name], self.commits[name] = done["seconds"], done.get("git")
            return
        folder.mkdir(parents=True, exist_ok=True)
        self.log.write(f"[repro] {name}: {' '.join(argv)}\n")
        self.log.flush()
        start = time.perf_counter()
        with open(folder / "stage.log", "a") as out:
            done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT)
        if done.returncode or not (folder / expect).exists():
            raise RuntimeError(f"stage {name} failed (exit {done.returncode}, {expect} "
                               f"{'written' if (folder / expect).exists() else 'missing'}); see {folder / 'stage.log'}")
        seconds = time.perf_counter() - start
        from mepbench import git_state

        code = git_state(CODE_DIR)
        (folder / DONE).write_text(json.dumps({"seconds": seconds, "argv": argv, "git": code}))
        self.timings[name], self.commits[name] = seconds, code

    def _common(self, seed: int, data: dict[str, Any] | None = None) -> list[str]:
        """The `seed`, `data.` and `cache_dir` arguments of a training stage on the train suite; `data` replaces the
        default `train_data` settings and `train_n` clips (the alignment stage sets its own)."""
        if data is None:
            data = {**self.config.train_data, "source": "mep-synth", "n": self.config.train_n}
        common = {"seed": seed, "data": {**data, "source": "mep-synth", "seed": self.config.train_seed}}
        if self.config.cache_dir:
            common["cache_dir"] = self.config.cache_dir
        return overrides(common)

    def train(self, seed: int) -> dict[str, Path]:
        """SFT from a fresh random model (after the alignment stage, if any), then each RL variant from the SFT
        weights; returns row → final weights."""
        from mepbench.models import build_tiny_omni

        root = self.work / f"seed-{seed}"
        init = build_tiny_omni(root / "init", seed=seed, size=self.config.model_size,
                               balanced=self.config.balanced_init, init_range=self.config.init_range)
        cli = [sys.executable, "-m", "oppo_train.cli"]
        if self.config.align:
            align = root / "align"
            self._run(f"seed-{seed}/align", align, [*cli, "sft", *self._common(seed, data={}), f"model.path={init}",
                                                    f"output_dir={align}", "reasoning_rows=false",
                                                    *overrides(self.config.align)], "final")
            init = align / "final"
        sft = root / "sft"
        self._run(f"seed-{seed}/sft", sft, [*cli, "sft", *self._common(seed), f"model.path={init}",
                                            f"output_dir={sft}", *overrides(self.config.sft)], "final")
        finals = {"sft": sft / "final"}
        for variant in self.config.variants:
            out = root / f"rl-{variant}"
            self._run(f"seed-{seed}/rl-{variant}", out, [*cli, "rl", *self._common(seed), f"variant={variant}",
                                                         f"model.path={sft / 'final'}", f"output_dir={out}",
                                                         *overrides(self.config.rl)], "final")
            finals[variant] = out / "final"
        return finals

    def evaluate(self, seed: int, finals: dict[str, Path]) -> dict[str, Path]:
        """`mepbench eval` of every row on the eval split; returns row → run folder."""
        runs = {}
        for row, weights in finals.items():
            out = self.work / f"seed-{seed}" / f"eval-{row}"
            argv = [sys.executable, "-m", "mepbench", "eval", "--model", str(weights), "--tasks",
                    self.config.eval_task, "--output-dir", str(out), "--batch-size", str(self.config.eval_batch_size)]
            if self.config.eval_limit:
                argv += ["--limit", str(self.config.eval_limit)]
            if self.config.cache_dir:
                argv += ["--cache-dir", self.config.cache_dir]
            self._run(f"seed-{seed}/eval-{row}", out, argv, "results.json")
            runs[row] = out
        return runs

    def html_report(self, runs: dict[str, Path], site: Path) -> None:
        """mepbench's static HTML report of one seed's eval runs (no thumbnails: the site stays small)."""
        argv = [sys.executable, "-m", "mepbench", "report", *map(str, runs.values()), "--out", str(site),
                "--references", "none", "--no-thumbnails"]
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"mepbench report failed: {done.stderr[-2000:]}")

    def run(self) -> Path:
        """Every seed's stages, then the leaderboard files; returns the leaderboard folder."""
        from oppo_train.repro_table import write_leaderboard

        started = time.time()
        runs = {}
        for seed in self.config.seeds:
            runs[seed] = self.evaluate(seed, self.train(seed))
        out = write_leaderboard(self.config, runs, {"seconds": self.timings, "commits": self.commits},
                                time.time() - started, self.eval_suite)
        for seed in self.config.seeds:
            self.html_report(runs[seed], out / "site" / f"seed-{seed}")
        if self.config.install_default:
            install_default(self.work / f"seed-{self.config.seeds[0]}" / f"rl-{self.config.default_model}" / "final",
                            out / "results.json", self.config.default_model, self.config.seeds[0])
        return out


MODEL_CARD = """---
license: apache-2.0
tags: [mepbench, mep-synth, oppo, tiny]
---
# tiny-omni (trained on mep-synth)

A {params:,}-parameter `Qwen2_5OmniThinkerForConditionalGeneration` (tiny-omni, size `{size}`) trained on the
mep-synth **train** split ({train_n} clips, suite seed {train_seed}) by `oppo-train repro`: SFT on the reference
reasoning and yes/no cue questions, then RL with the **{row}** variant, seed {seed}. It is the default model of
`mepbench eval`. It knows only mep-synth's cartoon faces, synthetic voices and subtitles: its scores on real data
mean nothing.

Chosen in advance (the `{row}` row of the first seed), not by its eval-split score.

- code of the RL stage: git {commit}
- results on the eval split (mep-synth, suite seed {eval_seed}): `leaderboards/mini-repro/`
- stage configs: `trainer_config.json` beside this card

| metric | value |
|---|---|
{metrics}
"""


def install_default(weights: Path, results: Path, row: str, seed: int) -> Path:
    """Copy `weights` into the package as the default `tiny-omni` with a model card naming its provenance."""
    import shutil

    from mepbench.models import TRAINED_TINY_OMNI
    from oppo_train.repro_table import COLUMNS

    data = json.loads(results.read_text())
    meta, values = data["metadata"], data["per_seed"][str(seed)][row]["values"]
    states = sorted((weights.parent / "checkpoints").glob("step-*/trainer_state.json"))
    state = json.loads(states[-1].read_text())
    config = meta["config"]
    target = Path(TRAINED_TINY_OMNI)
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(weights, target)
    (target / "trainer_config.json").write_text(json.dumps(state["config"], indent=2, default=str) + "\n")
    from safetensors import safe_open

    with safe_open(str(target / "model.safetensors"), "pt") as f:
        params = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())
    rows = "\n".join(f"| {header} | {100 * values[key]:.1f} |" for key, (header, _) in COLUMNS.items()
                     if values.get(key) is not None)
    code = meta["stages"]["commits"].get(f"seed-{seed}/rl-{row}") or {}
    commit = (f"{code['commit']}{' (with uncommitted changes)' if code.get('dirty') else ''}" if code.get("commit")
              else "not recorded (see leaderboards/mini-repro)")
    (target / "README.md").write_text(MODEL_CARD.format(
        params=params, size=config["model_size"], train_n=config["train_n"], train_seed=config["train_seed"],
        row=row, seed=seed, commit=commit, eval_seed=meta["eval_suite"]["seed"], metrics=rows))
    return target

