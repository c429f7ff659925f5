"""The mep-synth suite: procedurally generated clips with known emotion labels and known cues.

Every clip has a drawn face (video), a synthetic voice (audio) and a subtitle (text); each modality
agrees with the label, carries no cue, or conflicts with it, and the manifest records the cues
actually rendered plus a reference reasoning string. Generation is deterministic from the seed.
"""

from mepbench.synth.cues import EMOTIONS
from mepbench.synth.suite import SUITE_VERSION, generate_suite

__all__ = ["EMOTIONS", "SUITE_VERSION", "generate_suite"]
