"""Claim consistency under masking: how often a model's reasoning claims cues of a modality it was not given.

This is the hallucination the OPPO paper is about ("the face is relaxed" said while the video is masked). The
reasoning written under `mask:m` goes through the same cue extractor as utilization; every cue of modality m it
yields is a claim. A statement that the input is missing ("no video is available", "I cannot see the face") is not
a claim: extractors drop it (`states_absence`). Per modality: the hallucinated-claim rate (share of masked-m
responses that claim at least one cue of m) and the claims per response, with percentile-bootstrap intervals over
responses. Failed requests and failed extractions are left out of both and counted, so a failure never lowers
(improves) either number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mepbench.scoring.cues import ExtractionResult
from mepbench.scoring.metrics import Estimate, mean_estimate


@dataclass(frozen=True)
class ClaimReport:
    """Claims of one modality in the responses written with it masked."""

    modality: str
    variant: str
    rate: Estimate
    per_response: Estimate
    n: int
    n_claiming: int
    n_failed: int

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"modality": self.modality, "variant": self.variant, "rate": self.rate.to_dict(),
                "per_response": self.per_response.to_dict(), "n": self.n, "n_claiming": self.n_claiming,
                "n_failed": self.n_failed, "interval": "percentile bootstrap over responses"}


def claimed(result: ExtractionResult, modality: str) -> list[str]:
    """The cues of `modality` a response claims (none for a failed extraction)."""
    return list(result.cues.get(modality)) if result.ok else []


def claim_consistency(results: Sequence[ExtractionResult], modality: str, variant: str, *, resamples: int = 1000,
                      seed: int = 0) -> ClaimReport:
    """Hallucinated-claim rate and claims per response of `modality` over the extractions of its masked variant."""
    counts = np.array([len(claimed(r, modality)) for r in results if r.ok], dtype=float)
    return ClaimReport(modality, variant, mean_estimate(counts > 0, resamples, seed),
                       mean_estimate(counts, resamples, seed), int(counts.size), int((counts > 0).sum()),
                       sum(not r.ok for r in results))
