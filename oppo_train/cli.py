"""The `oppo-train` command: `oppo-train sft|rl [--config FILE] [key=value ...]` (dotted keys, YAML values)."""

from __future__ import annotations

import argparse
import sys
from importlib.resources import files
from pathlib import Path

from oppo_train.config import ConfigError, RLConfig, SFTConfig, load_config

STAGES = {"sft": SFTConfig, "rl": RLConfig}


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
    p.add_argument("stage", choices=sorted(STAGES), help="sft (stage 1) or rl (stage 2)")
    p.add_argument("--config", help="YAML config file or shipped preset name")
    p.add_argument("overrides", nargs="*", default=[], metavar="key=value",
                   help="e.g. variant=papo perception.beta=0.01")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    return p


def main(argv: list[str] | None = None) -> None:
    """Parse, build the config, run the stage; config and training errors exit 2 and 1 with one clear line."""
    args = parser().parse_intermixed_args(argv)
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

    try:
        if isinstance(config, RLConfig):
            from oppo_train.rl import RLTrainer

            final = RLTrainer(config).train()
        else:
            from oppo_train.sft import SFTTrainer

            final = SFTTrainer(config).train()
    except (ConfigError, DataError, FileNotFoundError) as exc:
        sys.stderr.write(f"oppo-train: {exc}\n")
        raise SystemExit(2) from exc
    except TrainingError as exc:
        sys.stderr.write(f"oppo-train: {exc}\n")
        raise SystemExit(1) from exc
    if final is not None:
        sys.stdout.write(f"final weights: {final}\n")


if __name__ == "__main__":
    main()
