"""Generative model of the mep-synth suite: emotions, cue profiles, neutral subtitles and reasoning (the cue names and
emotional subtitles are `mepbench.scoring.vocabulary`).

A clip is drawn in two steps: a label (uniform over EMOTIONS), then per modality a condition
(agree / missing / conflict) that decides whose cues that modality shows. The reference cues are exactly
the cues rendered into the media, so scorers can check a model's evidence against what is really there;
every other cue of the vocabulary is exactly absent, which gives the faithfulness probes their negatives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from mepbench.scoring.vocabulary import SUBTITLES, VOCABULARY

T = TypeVar("T")

EMOTIONS = ("happy", "sad", "angry", "surprised", "fearful", "neutral")
MODALITIES = ("video", "audio", "text")
CONDITIONS = ("agree", "missing", "conflict")

CONDITION_PROBS = {"agree": 0.45, "missing": 0.4, "conflict": 0.15}
NEUTRAL_CONDITION_PROBS = {"agree": 0.85, "conflict": 0.15}


@dataclass(frozen=True)
class CueProfile:
    """An emotion's cues in one modality: `core` cues always appear, each `optional` cue half the time."""

    core: tuple[str, ...]
    optional: tuple[str, ...] = ()

    @property
    def all(self) -> frozenset[str]:
        """Every cue this emotion can show in the modality."""
        return frozenset(self.core + self.optional)


# Each emotion's face has one core cue that identifies it and optional cues that each appear half the time (suite
# version 4): a model that knows the emotion from the subtitle or the voice can guess the core cue, but which optional
# cues a face shows is known only by looking. Every cue set identifies its emotion, and no two cues of one set need
# the same facial feature (mouth: smiling / frowning / open; brows: raised / furrowed; eyes; tears).
VISUAL_PROFILES: dict[str, CueProfile] = {
    "happy": CueProfile(("smiling mouth",), ("raised eyebrows", "wide eyes")),
    "sad": CueProfile(("frowning mouth",), ("tears",)),
    "angry": CueProfile(("furrowed brows",), ("frowning mouth", "wide eyes")),
    "surprised": CueProfile(("open mouth",), ("raised eyebrows", "wide eyes")),
    "fearful": CueProfile(("wide eyes",), ("raised eyebrows", "frowning mouth", "tears")),
    "neutral": CueProfile(()),
}

AUDIO_PROFILES: dict[str, CueProfile] = {
    "happy": CueProfile(("high pitch", "loud voice", "fast speech")),
    "sad": CueProfile(("low pitch", "soft voice", "slow speech"), ("sigh",)),
    "angry": CueProfile(("low pitch", "loud voice", "fast speech")),
    "surprised": CueProfile(("high pitch", "loud voice")),
    "fearful": CueProfile(("high pitch", "soft voice", "trembling voice")),
    "neutral": CueProfile(()),
}

NEUTRAL_SUBTITLES = (
    "I'll see you at five.",
    "The meeting is on the third floor.",
    "Can you pass me the report?",
    "The train leaves at nine.",
    "I put the keys on the table.",
    "The store closes at eight.",
    "Let's take the left road.",
    "We need two more chairs.",
)

_MODALITY_NAMES = {"video": "face", "audio": "voice", "text": "subtitle"}
_WITH_ARTICLE = {"smiling mouth", "frowning mouth", "open mouth", "loud voice", "soft voice",
                 "trembling voice", "sigh"}


@dataclass(frozen=True)
class ClipSpec:
    """Everything a clip shows: label, per-modality conditions and the cues rendered into each medium."""

    label: str
    conditions: dict[str, str]
    conflict_emotion: dict[str, str | None]
    cues: dict[str, tuple[str, ...]]
    subtitle: str


def _choice(rng: np.random.Generator, options: Sequence[T]) -> T:
    return options[int(rng.integers(len(options)))]


def _draw_conditions(rng: np.random.Generator, label: str) -> dict[str, str]:
    """Conditions per modality, redrawn until agreeing modalities outnumber conflicting ones."""
    probs = NEUTRAL_CONDITION_PROBS if label == "neutral" else CONDITION_PROBS
    names, weights = list(probs), np.array(list(probs.values()))
    while True:
        drawn = {m: names[int(rng.choice(len(names), p=weights))] for m in MODALITIES}
        values = list(drawn.values())
        if values.count("agree") > values.count("conflict"):
            return drawn


def _profile_cues(rng: np.random.Generator, profile: CueProfile) -> tuple[str, ...]:
    extra = tuple(c for c in profile.optional if rng.random() < 0.5)
    return profile.core + extra


def shown_emotion(label: str, condition: str, conflict_emotion: str | None) -> str:
    """The emotion one modality shows: the label when it agrees, the conflicting emotion, or neutral when missing."""
    return conflict_emotion or (label if condition == "agree" else "neutral")


def sample_clip(rng: np.random.Generator) -> ClipSpec:
    """Draw one clip's label, conditions, cues and subtitle from the generative model."""
    label = _choice(rng, EMOTIONS)
    conditions = _draw_conditions(rng, label)
    others = [e for e in EMOTIONS if e not in ("neutral", label)]
    conflict = {m: (_choice(rng, others) if c == "conflict" else None) for m, c in conditions.items()}
    shown = {m: shown_emotion(label, c, conflict[m]) for m, c in conditions.items()}
    cues = {
        "video": _profile_cues(rng, VISUAL_PROFILES[shown["video"]]),
        "audio": _profile_cues(rng, AUDIO_PROFILES[shown["audio"]]),
    }
    if shown["text"] == "neutral":
        subtitle, cues["text"] = _choice(rng, NEUTRAL_SUBTITLES), ()
    else:
        subtitle, phrase = _choice(rng, SUBTITLES[shown["text"]])
        cues["text"] = (phrase,)
    return ClipSpec(label, conditions, conflict, cues, subtitle)


PROFILES = {"video": VISUAL_PROFILES, "audio": AUDIO_PROFILES}


def absent_cues(spec: ClipSpec, rng: np.random.Generator) -> dict[str, tuple[str, ...]]:
    """Per probed modality, every cue of the vocabulary that the clip does not show, "bait" first.

    Bait cues are those the label's emotion shows in that modality but this clip does not (tears on a sad clip
    whose face is missing or conflicts): a model that infers the face from the subtitle or the voice claims them.
    Bait and the other absent cues are each in a seeded random order, so the first k are a fair draw."""
    out = {}
    for modality, vocabulary in VOCABULARY.items():
        shown = set(spec.cues[modality])
        bait = sorted(PROFILES[modality][spec.label].all - shown)
        rest = [c for c in vocabulary if c not in shown and c not in bait]
        out[modality] = tuple(bait[i] for i in rng.permutation(len(bait))) + tuple(
            rest[i] for i in rng.permutation(len(rest)))
    return out


def decided_by(spec: ClipSpec) -> str:
    """Which modalities carry the label ("video", "audio+text", ...; "none" for a neutral clip with no conflict):
    a clip decided by one modality can only be answered from that modality, the others being silent or outvoted."""
    if spec.label == "neutral":
        conflicts = [m for m in MODALITIES if spec.conditions[m] == "conflict"]
        return "+".join(m for m in MODALITIES if m not in conflicts) if conflicts else "none"
    return "+".join(m for m in MODALITIES if spec.conditions[m] == "agree")


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _phrase(cue: str) -> str:
    return f"a {cue}" if cue in _WITH_ARTICLE else cue


def describe(modality: str, cues: Sequence[str]) -> str:
    """The reference sentence for what a face ("video") or a voice ("audio") shows, without its final period."""
    if modality == "video":
        return (f"The face shows {_join([_phrase(c) for c in cues])}" if cues
                else "The face is relaxed, with no salient expression")
    return (f"The audio has {_join([_phrase(c) for c in cues])}" if cues
            else "The voice is even, at a middle pitch, loudness and rate")


def _describe(spec: ClipSpec, modality: str) -> str:
    cues = spec.cues[modality]
    if modality in ("video", "audio"):
        text = describe(modality, cues)
    else:
        text = (f'The subtitle says "{spec.subtitle}", which mentions {cues[0]}' if cues
                else f'The subtitle "{spec.subtitle}" is emotionally uninformative')
    return text + "."


def _names(modalities: list[str]) -> str:
    return _join([f"the {_MODALITY_NAMES[m]}" for m in modalities])


def _conclusion(spec: ClipSpec) -> str:
    agree = [m for m in MODALITIES if spec.conditions[m] == "agree"]
    conflict = [m for m in MODALITIES if spec.conditions[m] == "conflict"]
    quiet = [m for m in MODALITIES if spec.conditions[m] == "missing"]
    label, plural = spec.label, len(agree) > 1
    support = (f"{'show' if plural else 'shows'} no emotional cue" if label == "neutral"
               else f"{'point' if plural else 'points'} to {label}")
    if conflict:
        claims = _join([f"the {_MODALITY_NAMES[m]} suggests {spec.conflict_emotion[m]}" for m in conflict])
        text = f"{claims}, but {_names(agree)} {support}; the agreeing evidence outweighs the conflict"
    elif label == "neutral":
        text = "no modality carries a salient emotional cue"
    else:
        verb = "carry" if len(quiet) > 1 else "carries"
        rest = f", while {_names(quiet)} {verb} no emotional cue" if quiet else ""
        text = f"{_names(agree)} {support}{rest}"
    return f"{text[0].upper()}{text[1:]}, so the emotion is {label}."


def reasoning(spec: ClipSpec) -> str:
    """Ground-truth reasoning: every present cue with its modality, any conflict, then the answer."""
    think = " ".join([_describe(spec, m) for m in MODALITIES] + [_conclusion(spec)])
    return f"<think>{think}</think><answer>{spec.label}</answer>"
