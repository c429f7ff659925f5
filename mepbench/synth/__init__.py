"""The mep-synth suite: procedurally generated clips with known emotion labels and known cues.

Every clip has a drawn face (video), a synthetic voice (audio) and a subtitle (text); each modality
agrees with the label, carries no cue, or conflicts with it, and the manifest records the cues
actually rendered plus a reference reasoning string. Generation is deterministic from the seed.
"""

from typing import Any

from mepbench.synth.cues import EMOTIONS, describe, shown_emotion

__all__ = ["EMOTIONS", "SUITE_VERSION", "describe", "generate_suite", "shown_emotion"]


def __getattr__(name: str) -> Any:
    """The generator (faces and voices: PIL and scipy.signal), imported on first use."""
    if name not in ("SUITE_VERSION", "generate_suite"):
        raise AttributeError(f"module 'mepbench.synth' has no attribute {name!r}")
    from mepbench.synth import suite

    return getattr(suite, name)
