"""mepbench: evaluation of omni-modal emotion reasoning — accuracy, modality utilization and faithfulness.

The public API, all importable from here: run an evaluation with `run_eval(EvalConfig(...))`, write it with
`write_run`, read a run directory back with `load_run` (typed `RunResult` and `SampleRecord`s); the core value types;
and the helpers other tools build on (`default_cache_dir`, `git_state` for provenance, `strict_dumps` for strict
JSON). Subpackages with a public surface of their own list it in their `__all__`: `mepbench.scoring`,
`mepbench.tasks`, `mepbench.models`, `mepbench.synth`, `mepbench.report`, `mepbench.backends`,
`mepbench.backends.adapters`. Heavier names are imported on first use.
"""

from importlib import import_module
from typing import Any

from mepbench.masking import FULL, MaskMode, Variant
from mepbench.records import MetricValue, RunResult, SampleRecord, TaskResult
from mepbench.run_dir import Run, load_run
from mepbench.types import (
    AudioPart,
    GenerationParams,
    ImagePart,
    Message,
    Modality,
    Request,
    Response,
    Sample,
    SampleError,
    TextPart,
    VideoPart,
)

__version__ = "0.1.0"

_LAZY = {"EvalConfig": ("mepbench.config", "EvalConfig"), "run_eval": ("mepbench.runner", "run_eval"),
         "write_run": ("mepbench.results", "write_run"), "git_state": ("mepbench.results", "git_state"),
         "default_cache_dir": ("mepbench.cache", "default_cache_dir"),
         "strict_dumps": ("mepbench.strict_json", "dumps")}

__all__ = ["FULL", "AudioPart", "EvalConfig", "GenerationParams", "ImagePart", "MaskMode", "Message", "MetricValue",
           "Modality", "Request", "Response", "Run", "RunResult", "Sample", "SampleError", "SampleRecord", "TaskResult",
           "TextPart", "Variant", "VideoPart", "__version__", "default_cache_dir", "git_state", "load_run", "run_eval",
           "strict_dumps", "write_run"]


def __getattr__(name: str) -> Any:
    """Resolve a lazily exported name from its module on first access."""
    if name not in _LAZY:
        raise AttributeError(f"module 'mepbench' has no attribute {name!r}")
    module, attr = _LAZY[name]
    return getattr(import_module(module), attr)
