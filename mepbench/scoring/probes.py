"""Faithfulness probes: yes/no answer parsing and the three-part score that a model must perceive to pass.

Per probed modality m, three sets of yes/no questions about cues of m (MEP-Bench's POPE-style probes, OPPO §2.2,
plus negatives):

- **TPR** (`control`): a cue the clip shows, asked with every modality present; correct "yes".
- **TNR-absent** (`negative`): a cue of m the clip does not show, asked with every modality present; correct "no".
- **TNR-masked** (`probe`): a cue the clip shows, asked with m masked; correct "no". This is the paper's Acc@V /
  Acc@A.

Two balanced accuracies pair the "yes" set with each "no" set: BA-absent = (TPR + TNR-absent)/2 (does it see the
cue?) and BA-masked = (TPR + TNR-masked)/2 (does it notice the modality is gone?). The headline, PF@m, is the
smaller of the two. Each is 0.5 + J/2 with Youden's J, so any answer policy that ignores the input (always "yes",
always "no", a biased coin) scores 0.5 on both, and a mask detector (no iff m is masked, never looking at the cue)
scores 1.0 on BA-masked but 0.5 on BA-absent: all of them get at most 0.5, chance. Only a model that tells a present
cue from an absent one *and* from a masked one scores above it. The mean of the three rates would give always-"no"
2/3 and a mask detector 2/3; their minimum gives a fair coin 0.5 but every one-sided policy 0, so a mixture of
perception and bias is scored by its bias alone.

Intervals: percentile bootstrap over clips (a clip's probes are resampled together, since they share the clip),
so every interval stays in [0, 1]. An unparseable answer, or a failed request, is wrong in every set and counted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mepbench.scoring.metrics import (
    Estimate,
    bootstrap_estimate,
    bootstrap_indices,
    undefined,
)
from mepbench.types import Modality

PROBED = (Modality.VIDEO, Modality.AUDIO)  # the modalities asked about by yes/no probes (MEP-Bench, training data)
YES_WORDS = ("yes", "yeah", "yep", "yup")
NO_WORDS = ("no", "nope")
_DECISIVE = re.compile(r"(?<![\w'’-])(" + "|".join(YES_WORDS + NO_WORDS) + r")(?![\w'’-])", re.I)
_ANSWER = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.S | re.I)
_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.S | re.I)

# probe kind → (what it measures, the correct answer)
KINDS = {"control": ("tpr", True), "negative": ("tnr_absent", False), "probe": ("tnr_masked", False)}
NAN = undefined()


def parse_yes_no(text: str) -> bool | None:
    """True for yes, False for no, None when undecidable.

    Only whole words count ("not", "know", "nothing", "nobody", "yesterday" are neither). The content of an
    `<answer>` tag decides when there is one; otherwise the text outside `<think>`. When both words occur the
    first one decides: models asked for a bare yes/no lead with the answer and then explain it ("No, the video
    shows a calm face, yes, but no tears" is no).
    """
    answer = _ANSWER.search(text)
    scope = answer.group(1) if answer else _THINK.sub(" ", text)
    word = _DECISIVE.search(scope)
    if word is None:
        return None
    return word.group(1).lower() in YES_WORDS


@dataclass(frozen=True)
class ProbeItem:
    """One answered probe: its clip, kind (`control`, `negative`, `probe`) and the raw answer ("" when failed)."""

    sample_id: str
    kind: str
    answer: str


@dataclass(frozen=True)
class ProbeSet:
    """One probe set's accuracy with its interval, and the answer counts."""

    accuracy: Estimate
    n: int
    n_correct: int
    n_yes: int
    n_no: int
    n_unparsed: int

    def to_dict(self) -> dict[str, Any]:
        """JSON form; `yes_rate` is the share of answers that are "yes"."""
        return {"accuracy": self.accuracy.to_dict(), "n": self.n, "n_correct": self.n_correct, "n_yes": self.n_yes,
                "n_no": self.n_no, "n_unparsed": self.n_unparsed,
                "yes_rate": self.n_yes / self.n if self.n else None}


@dataclass(frozen=True)
class Faithfulness:
    """The three probe sets of one modality, the two balanced accuracies, the headline PF and the yes-rate."""

    control: ProbeSet
    negative: ProbeSet
    masked: ProbeSet
    balanced_absent: Estimate
    balanced_masked: Estimate
    headline: Estimate
    yes_rate: Estimate
    n_clips: int

    def to_dict(self) -> dict[str, Any]:
        """JSON form: `control` = TPR, `absent` = TNR-absent, `masked` = TNR-masked (Acc@m)."""
        return {"control": self.control.to_dict(), "absent": self.negative.to_dict(), "masked": self.masked.to_dict(),
                "balanced_absent": self.balanced_absent.to_dict(), "balanced_masked": self.balanced_masked.to_dict(),
                "headline": self.headline.to_dict(), "yes_rate": self.yes_rate.to_dict(), "n_clips": self.n_clips,
                "interval": "percentile bootstrap over clips"}


CLUSTERED = "clip-clustered-percentile-bootstrap"


def _with_ci(value: float, boot: np.ndarray, n: int) -> Estimate:
    """`value` with the interval of its clip-resampled replicates (`n` clips)."""
    if np.isnan(value):
        return undefined(n)
    return bootstrap_estimate(value, boot[~np.isnan(boot)], n, CLUSTERED)


def _rate(hits: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """hits / counts along the last axis, NaN where nothing was counted."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, hits / np.maximum(counts, 1), np.nan)


def faithfulness(items: Sequence[ProbeItem], *, resamples: int = 1000, seed: int = 0) -> Faithfulness:
    """The three-part faithfulness of one modality's probes (see the module docstring for the definitions)."""
    unknown = {i.kind for i in items} - set(KINDS)
    if unknown:
        raise ValueError(f"unknown probe kinds {sorted(unknown)}; expected {sorted(KINDS)}")
    clips = sorted({i.sample_id for i in items})
    where = {c: k for k, c in enumerate(clips)}
    kinds = list(KINDS)
    # per clip and kind: answered, correct, yes, no, unparsed
    table = np.zeros((len(clips), len(kinds), 5))
    for item in items:
        parsed = parse_yes_no(item.answer)
        expected = KINDS[item.kind][1]
        table[where[item.sample_id], kinds.index(item.kind)] += (
            1, parsed is not None and parsed == expected, parsed is True, parsed is False, parsed is None)
    totals = table.sum(axis=0)
    boot = table[bootstrap_indices(len(clips), resamples, seed)].sum(axis=1) if clips and resamples else \
        np.zeros((0, len(kinds), 5))
    acc, acc_boot = _rate(totals[:, 1], totals[:, 0]), _rate(boot[..., 1], boot[..., 0])
    n = len(clips)
    sets = [ProbeSet(_with_ci(float(acc[k]), acc_boot[:, k], n), *(int(x) for x in totals[k, [0, 1, 2, 3, 4]]))
            for k in range(len(kinds))]
    tpr, tnr_absent, tnr_masked = (kinds.index(k) for k in KINDS)
    ba_absent, ba_masked = (acc[tpr] + acc[tnr_absent]) / 2, (acc[tpr] + acc[tnr_masked]) / 2
    boot_absent = (acc_boot[:, tpr] + acc_boot[:, tnr_absent]) / 2
    boot_masked = (acc_boot[:, tpr] + acc_boot[:, tnr_masked]) / 2
    yes, yes_boot = _rate(totals[:, 2].sum(), totals[:, 0].sum()), _rate(boot[..., 2].sum(-1), boot[..., 0].sum(-1))
    return Faithfulness(
        control=sets[tpr], negative=sets[tnr_absent], masked=sets[tnr_masked],
        balanced_absent=_with_ci(float(ba_absent), boot_absent, n),
        balanced_masked=_with_ci(float(ba_masked), boot_masked, n),
        headline=_with_ci(float(np.minimum(ba_absent, ba_masked)), np.minimum(boot_absent, boot_masked), n),
        yes_rate=_with_ci(float(yes), yes_boot, n), n_clips=n)
