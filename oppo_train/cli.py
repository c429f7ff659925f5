"""The `oppo-train` command: `oppo-train sft|rl|repro [--config FILE] [key=value ...]` (dotted keys, YAML values).

`repro` runs the miniature OPPO reproduction (`oppo_train.repro`; preset `mini_repro`); `oppo-train merge --out DIR
FOLDER FOLDER ...` joins the leaderboards that separate `repro` invocations wrote for different seeds."""

from __future__ import annotations

import argparse
import sys
from importlib.resources import files
from pathlib import Path

from oppo_train.config import ConfigError, RLConfig, SFTConfig, load_config
from oppo_train.repro import ReproConfig

STAGES = {"sft": SFTConfig, "rl": RLConfig, "repro": ReproConfig}


def preset_dir() -> Path:
    """The config presets shipped with the package."""
    return Path(str(files("oppo_train") / "configs"))


def resolve_config_path(name: str) -> Path:
    """A config file path, or the name of a shipped preset (`rl_oppo`, `sft_tiny.yaml`, ...)."""
    path = Path(name)
    if path.is_file():
        return path
    for candidate in (preset_dir() / name, preset_dir() / f"{name}.yaml"):
        if candidate.is_file():
            return candidate
    raise ConfigError(f"config not found: {name} (shipped presets: "
                      f"{', '.join(sorted(p.stem for p in preset_dir().glob('*.yaml')))})")


def parser() -> argparse.ArgumentParser:
    """The argument parser."""
    p = argparse.ArgumentParser(prog="oppo-train", description="Train omni-modal emotion reasoners: SFT, then GRPO "
                                "with the Omni-Perception Reward and Loss (and the baseline/PAPO ablations).")
    p.add_argument("stage", choices=sorted([*STAGES, "merge"]), help="sft (stage 1), rl (stage 2), repro (the mini "
                   "reproduction on mep-synth: SFT, every RL variant, evaluation, leaderboard) or merge (one "
                   "leaderboard from those of separate repro runs over different seeds)")
    p.add_argument("--config", help="YAML config file or shipped preset name")
    p.add_argument("overrides", nargs="*", default=[], metavar="key=value",
                   help="e.g. variant=papo perception.beta=0.01; for merge: the leaderboard folders")
    p.add_argument("--out", help="merge: the folder the merged leaderboard is written to (may be one of the inputs)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    return p


def main(argv: list[str] | None = None) -> None:
    """Parse, build the config, run the stage; config and training errors exit 2 and 1 with one clear line."""
    args = parser().parse_intermixed_args(argv)
    if args.stage == "merge":
        run_merge(args.overrides, args.out)
        return
    try:
        path = resolve_config_path(args.config) if args.config else None
        config = load_config(STAGES[args.stage], path, args.overrides)
    except ConfigError as exc:
        sys.stderr.write(f"oppo-train: {exc}\n")
        raise SystemExit(2) from exc
    if args.print_config:
        import yaml

        from oppo_train.config import to_dict

        sys.stdout.write(yaml.safe_dump(to_dict(config), sort_keys=False))
        return
    from oppo_train.data import DataError
    from oppo_train.engine import TrainingError

    if isinstance(config, ReproConfig):
        run_repro(config)
        return
    try:
        if isinstance(config, RLConfig):
            from oppo_train.rl import RLTrainer

            trainer = RLTrainer(config)
        else:
            from oppo_train.sft import SFTTrainer

            trainer = SFTTrainer(config)
        final = trainer.train()
        trainer.close()
    except (ConfigError, DataError, FileNotFoundError) as exc:
        sys.stderr.write(f"oppo-train: {exc}\n")
        raise SystemExit(2) from exc
    except TrainingError as exc:
        sys.stderr.write(f"oppo-train: {exc}\n")
        raise SystemExit(1) from exc
    if final is not None:
        sys.stdout.write(f"final weights: {final}\n")


def run_repro(config: ReproConfig) -> None:
    """Run the reproduction; a failed stage exits 1 naming its log."""
    from oppo_train.repro import Experiment

    try:
        out = Experiment(config).run()
    except (ConfigError, RuntimeError) as exc:
        sys.stderr.write(f"oppo-train repro: {exc}\n")
        raise SystemExit(1) from exc
    sys.stdout.write(f"leaderboard: {out}\n")


def run_merge(folders: list[str], out: str | None) -> None:
    """Merge leaderboards; a missing `--out` or boards that cannot be merged exit 2 with one line."""
    from oppo_train.repro_merge import MergeError, merge_boards

    try:
        if not out:
            raise MergeError("merge needs --out DIR")
        written = merge_boards([Path(f) for f in folders], Path(out))
    except MergeError as exc:
        sys.stderr.write(f"oppo-train merge: {exc}\n")
        raise SystemExit(2) from exc
    sys.stdout.write(f"leaderboard: {written}\n")


if __name__ == "__main__":
    main()
