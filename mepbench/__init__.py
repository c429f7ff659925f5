"""mepbench: evaluation of omni-modal emotion reasoning — accuracy, modality utilization and faithfulness.

The public API: run an evaluation with `run_eval(EvalConfig(...))`, write it with `write_run`, read a run directory
back with `load_run` (typed `RunResult` and `SampleRecord`s, `mepbench.records`; `mepbench.run_dir`); the core types live in
`mepbench.types`.
"""

from mepbench.masking import MaskMode, Variant
from mepbench.records import MetricValue, RunResult, SampleRecord, TaskResult
from mepbench.run_dir import Run, load_run
from mepbench.types import (AudioPart, GenerationParams, ImagePart, Message, Modality, Request, Response, Sample,
                            SampleError, TextPart, VideoPart)

__version__ = "0.1.0"

__all__ = ["AudioPart", "GenerationParams", "ImagePart", "MaskMode", "Message", "MetricValue", "Modality", "Request",
           "Response", "Run", "RunResult", "Sample", "SampleError", "SampleRecord", "TaskResult", "TextPart", "Variant",
           "VideoPart", "__version__", "load_run"]
