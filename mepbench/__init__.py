"""mepbench: evaluation of omni-modal emotion reasoning — accuracy, modality utilization and faithfulness.

The public API: run an evaluation with `run_eval(EvalConfig(...))`, write it with `write_run`, read it
back with `read_run`; the core types live in `mepbench.types`.
"""

from mepbench.masking import MaskMode, Variant
from mepbench.types import (AudioPart, GenerationParams, ImagePart, Message, Modality, Request, Response, Sample,
                            SampleError, TextPart, VideoPart)

__version__ = "0.1.0"

__all__ = ["AudioPart", "GenerationParams", "ImagePart", "MaskMode", "Message", "Modality", "Request", "Response",
           "Sample", "SampleError", "TextPart", "Variant", "VideoPart", "__version__"]
