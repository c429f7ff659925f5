"""Faithfulness probes: yes/no answer parsing, masked-probe and control accuracy, and a balanced score.

Masked probes ask about a reference cue of modality m with m masked (correct: "no", paper §2.2 Acc@V/Acc@A);
controls ask the same question with m present (correct: "yes"). An unparseable answer is wrong and counted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mepbench.scoring.metrics import Estimate, bootstrap_estimate, bootstrap_indices

YES_WORDS = ("yes", "yeah", "yep", "yup")
NO_WORDS = ("no", "nope")
_DECISIVE = re.compile(r"(?<![\w'’-])(" + "|".join(YES_WORDS + NO_WORDS) + r")(?![\w'’-])", re.I)
_ANSWER = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.S | re.I)
_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.S | re.I)


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
class ProbeScore:
    """Accuracy of one probe set with a bootstrap CI, answer counts, and per-item correctness."""

    accuracy: Estimate
    n: int
    n_correct: int
    n_yes: int
    n_no: int
    n_unparsed: int
    correct: tuple[bool, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON form (without the per-item vector)."""
        return {"accuracy": self.accuracy.to_dict(), "n": self.n, "n_correct": self.n_correct, "n_yes": self.n_yes,
                "n_no": self.n_no, "n_unparsed": self.n_unparsed}


def _score(parsed: list[bool | None], expected: list[bool], resamples: int, seed: int) -> tuple[ProbeScore, np.ndarray]:
    correct = np.array([p is not None and p == e for p, e in zip(parsed, expected)], dtype=float)
    if correct.size:
        boot = correct[bootstrap_indices(correct.size, resamples, seed)].mean(axis=-1)
        estimate = bootstrap_estimate(float(correct.mean()), boot)
    else:
        boot = np.full(resamples, np.nan)
        estimate = Estimate(float("nan"), float("nan"), float("nan"))
    score = ProbeScore(estimate, len(parsed), int(correct.sum()), sum(p is True for p in parsed),
                       sum(p is False for p in parsed), sum(p is None for p in parsed),
                       tuple(bool(c) for c in correct))
    return score, boot


def probe_accuracy(answers: Sequence[str], expected: bool | Sequence[bool], *, resamples: int = 1000,
                   seed: int = 0) -> ProbeScore:
    """Fraction of answers equal to `expected` (one bool for the whole set, or one per answer)."""
    want = [expected] * len(answers) if isinstance(expected, bool) else list(expected)
    if len(want) != len(answers):
        raise ValueError(f"{len(answers)} answers but {len(want)} expected values")
    return _score([parse_yes_no(a) for a in answers], want, resamples, seed)[0]


@dataclass(frozen=True)
class FaithfulnessScore:
    """Masked-probe accuracy (Acc@m, expected "no"), control accuracy (expected "yes"), and their mean."""

    masked: ProbeScore
    control: ProbeScore
    balanced: Estimate

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"masked": self.masked.to_dict(), "control": self.control.to_dict(),
                "balanced": self.balanced.to_dict()}


def faithfulness(masked_answers: Sequence[str], control_answers: Sequence[str], *, resamples: int = 1000,
                 seed: int = 0) -> FaithfulnessScore:
    """Acc@m on masked probes, accuracy on controls, and the balanced score = their arithmetic mean.

    The balanced score is balanced accuracy, 0.5 + J/2 with Youden's J = TPR − FPR: any answer policy that ignores
    the input (always "no", always "yes", a biased coin) scores exactly 0.5, so only telling present from
    masked cues raises it, and unlike a harmonic mean it does not move with the yes/no bias at equal J. It is
    NaN when either set is empty. The two sets are resampled independently for the CI.
    """
    masked, boot_masked = _score([parse_yes_no(a) for a in masked_answers], [False] * len(masked_answers),
                                 resamples, seed)
    control, boot_control = _score([parse_yes_no(a) for a in control_answers], [True] * len(control_answers),
                                   resamples, seed + 1)
    if masked.n == 0 or control.n == 0:
        balanced = Estimate(float("nan"), float("nan"), float("nan"))
    else:
        value = (masked.accuracy.value + control.accuracy.value) / 2
        balanced = bootstrap_estimate(value, (boot_masked + boot_control) / 2)
    return FaithfulnessScore(masked, control, balanced)
