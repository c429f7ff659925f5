"""Cue extraction from reasoning texts: a deterministic lexicon matcher and an LLM extractor.

A cue is a short phrase naming one perceivable piece of evidence, tagged with its modality (paper §2.2:
visual, acoustic and textual cues of 2–6 words). Both extractors return `ExtractionResult`s; a failed
extraction is kept (ok=False with the reason) so scorers count it instead of dropping the sample.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from mepbench.backends.base import Backend
from mepbench.scoring.vocabulary import AUDIO_CUES, SUBTITLES, VISUAL_CUES
from mepbench.types import GenerationParams, Message, Modality, Request, Response, TextPart

MODALITY_KEYS = tuple(m.value for m in Modality)

_KEY_ALIASES = {
    "video": "video", "visual": "video", "vision": "video", "visual_cues": "video", "visual_clues": "video",
    "video_cues": "video",
    "audio": "audio", "acoustic": "audio", "audio_cues": "audio", "audio_clues": "audio", "acoustic_cues": "audio",
    "text": "text", "textual": "text", "text_cues": "text", "text_clues": "text", "subtitle": "text",
    "emotion": "emotion", "emotions": "emotion", "reasoning_emotions": "emotion", "emotion_cues": "emotion",
}


def canonical_key(key: str) -> str:
    """Our name for a cue category ("visual_clues" → "video", "reasoning_emotions" → "emotion"); others pass."""
    return _KEY_ALIASES.get(key.strip().lower(), key.strip().lower())


def _clean(items: Iterable[Any]) -> tuple[str, ...]:
    """Stripped non-empty strings, first spelling kept among case-insensitive duplicates."""
    seen: dict[str, str] = {}
    for item in items:
        if isinstance(item, str) and item.strip():
            seen.setdefault(item.strip().lower(), item.strip())
    return tuple(seen.values())


@dataclass(frozen=True)
class Cues:
    """Cue phrases per modality; field names are the `Modality` values, phrases stripped and de-duplicated."""

    video: tuple[str, ...] = ()
    audio: tuple[str, ...] = ()
    text: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for key in MODALITY_KEYS:
            object.__setattr__(self, key, _clean(getattr(self, key)))

    @classmethod
    def from_dict(cls, data: Mapping[str, Iterable[str]]) -> Cues:
        """Build from any dict of lists, accepting the aliases of `canonical_key`; other keys are ignored."""
        merged: dict[str, list[str]] = {k: [] for k in MODALITY_KEYS}
        for key, values in data.items():
            name = canonical_key(key)
            if name in merged:
                merged[name].extend([values] if isinstance(values, str) else list(values or []))
        return cls(**{k: tuple(v) for k, v in merged.items()})

    def get(self, modality: str | Modality) -> tuple[str, ...]:
        """The cues of one modality."""
        return getattr(self, str(modality))

    def to_dict(self) -> dict[str, list[str]]:
        """JSON form, keyed by modality value."""
        return {k: list(getattr(self, k)) for k in MODALITY_KEYS}

    def __len__(self) -> int:
        return sum(len(getattr(self, k)) for k in MODALITY_KEYS)


@dataclass(frozen=True)
class ExtractionResult:
    """The cues found in one reasoning text, or why extraction failed (ok=False, `error`)."""

    cues: Cues = field(default_factory=Cues)
    ok: bool = True
    error: str | None = None


class CueExtractor(Protocol):
    """Anything that turns reasoning texts into cues, one result per text, never raising per text."""

    def extract_many(self, texts: Sequence[str], ids: Sequence[str] | None = None) -> list[ExtractionResult]:
        """Extract the cues of each text."""
        ...


EMPTY_REASONING = "empty reasoning text: nothing to extract cues from"

_THINK = re.compile(r"<think>(.*?)(?:</think>|<answer>|$)", re.S | re.I)
_ANSWER_BLOCK = re.compile(r"<answer>.*?(?:</answer>|$)", re.S | re.I)


def reasoning_text(completion: str) -> str:
    """The reasoning of a completion: the `<think>` content, else the text without its `<answer>` block."""
    think = _THINK.search(completion)
    return (think.group(1) if think else _ANSWER_BLOCK.sub(" ", completion)).strip()


# ----------------------------------------------------------------------------------------------- lexicon

# canonical cue -> further surface forms; the canonical phrase itself is always a surface form.
DEFAULT_LEXICON: dict[str, dict[str, tuple[str, ...]]] = {
    "video": {
        **{cue: () for cue in VISUAL_CUES},
        "smiling mouth": ("smile", "grin", "smiling face"),
        "frowning mouth": ("frown", "downturned mouth", "corners of the mouth turned down"),
        "open mouth": ("gaping mouth", "mouth agape", "jaw drops"),
        "raised eyebrows": ("raised brows", "eyebrows lifted", "brows lifted"),
        "furrowed brows": ("furrowed eyebrows", "knitted brows", "frowning brows"),
        "wide eyes": ("widened eyes", "eyes widen", "wide-open eyes"),
        "tears": ("teary eyes", "tearful", "crying", "eyes welling up"),
        "downcast eyes": ("looks down", "lowered gaze", "downward gaze"),
        "averted gaze": ("avoids eye contact", "looks away"),
        "direct eye contact": (),
        "clenched jaw": (),
        "pursed lips": (),
        "trembling lips": ("quivering lips",),
        "flushed face": ("red face",),
        "blank expression": ("expressionless face", "neutral expression"),
        "relaxed face": ("relaxed expression", "calm expression"),
        "tense face": ("tense expression", "tense facial muscles"),
        "slumped shoulders": ("hunched shoulders", "slumped posture"),
        "crossed arms": ("arms crossed",),
        "clenched fists": (),
        "nodding head": ("nods",),
        "shaking head": ("head shake",),
        "hands covering face": ("covers face", "covers her face", "covers his face"),
        "fidgeting hands": ("fidgets",),
        "leaning forward": (),
    },
    "audio": {
        **{cue: () for cue in AUDIO_CUES},
        "high pitch": ("raised pitch",),
        "low pitch": ("deep voice", "lowered pitch"),
        "loud voice": ("raised voice", "shouting", "yelling"),
        "soft voice": ("quiet voice", "whispering", "hushed voice"),
        "fast speech": ("rapid speech", "speaks quickly", "speaking fast", "fast pace", "fast speaking rate"),
        "slow speech": ("speaks slowly", "slow pace", "slow speaking rate", "drawn-out words"),
        "trembling voice": ("shaky voice", "quivering voice", "wavering voice", "voice cracks"),
        "sigh": ("deep breath", "exhales heavily"),
        "sobbing": ("sobs", "crying voice", "choked voice"),
        "laughter": ("laughs", "laughing", "chuckles"),
        "flat tone": ("monotone", "monotonous tone", "flat voice"),
        "rising intonation": (),
        "sarcastic tone": (),
        "cheerful tone": ("upbeat tone", "bright tone"),
        "angry tone": ("harsh tone", "sharp tone"),
        "sad tone": ("sorrowful tone", "melancholy tone"),
        "calm tone": ("steady voice", "even tone"),
        "tense tone": ("strained voice",),
        "long pauses": ("pauses", "hesitation", "hesitant speech"),
        "stuttering": ("stammering",),
        "gasp": ("gasps",),
    },
    # the emotion-bearing phrase of each mep-synth subtitle (its reference text cue)
    "text": {phrase: () for lines in SUBTITLES.values() for _, phrase in lines},
}

NEGATORS = ("no", "not", "never", "without", "nor", "neither", "lacks", "lack", "absent", "absence")
# words allowed between the head and the modifier of a reversed two-word cue ("voice is a bit shaky")
FILLERS = ("is", "are", "was", "were", "be", "been", "being", "seems", "seem", "seemed", "looks", "look", "looked",
           "sounds", "sound", "sounded", "becomes", "become", "became", "gets", "get", "got", "very", "quite",
           "rather", "somewhat", "so", "too", "a", "bit", "little", "also", "still")
_TOKEN = re.compile(r"[A-Za-z0-9]+(?:['’][A-Za-z]+)?|[.,;:!?]")
_QUOTED = re.compile(r"\"([^\"]+)\"|“([^”]+)”")
_NEGATION_WINDOW = 3


def stem(word: str) -> str:
    """A crude suffix-stripping stem so inflections meet ("smiling"/"smiles" → "smil", "cries"/"crying" → "cry")."""
    w = word.lower().replace("’", "'")
    if len(w) > 4 and w.endswith(("ies", "ied")):
        return w[:-3] + "y"
    for suffix in ("ing", "ed"):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3:
            w = w[: -len(suffix)]
            break
    else:
        if w.endswith("es") and w[:-2].endswith(("s", "x", "z", "ch", "sh")) and len(w) > 4:
            w = w[:-2]
        elif w.endswith("s") and not w.endswith("ss") and len(w) > 3:
            w = w[:-1]
    if w.endswith("e") and len(w) > 3:
        w = w[:-1]
    if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "lsz":
        w = w[:-1]
    return w


def _tokens(text: str) -> list[str]:
    """Stems of the words of `text`; punctuation kept as its own token (it bounds negation scope)."""
    return [t if t in ".,;:!?" else stem(t) for t in _TOKEN.findall(text)]


_NEGATOR_STEMS = frozenset(stem(w) for w in NEGATORS)
_FILLER_STEMS = frozenset(stem(w) for w in FILLERS)


def _is_filler(token: str) -> bool:
    return token in _FILLER_STEMS or (token.endswith("ly") and len(token) > 3)


class LexiconCueExtractor:
    """Deterministic cue finder: lexicon phrases matched on word stems, plus quoted spans as text cues.

    A phrase matches its stem sequence anywhere (so "smiling"/"smiles", "brow"/"brows", "sighs" match), and a
    two-word "modifier head" phrase also matches "head [copula/adverb…] modifier" ("brows are furrowed",
    "voice trembles"). A match with a negator ("no", "not", "without", …) among the 3 words before it in the same
    clause is skipped. Cues are reported in their canonical lexicon form, in order of first mention. Quoted text is
    searched for text cues only: the text-lexicon phrases it contains, or the whole quote when it contains none.
    """

    def __init__(self, lexicon: Mapping[str, Mapping[str, Sequence[str]]] | None = None, *,
                 negation: bool = True, quotes_as_text: bool = True):
        self.lexicon = {canonical_key(m): dict(v) for m, v in (lexicon or DEFAULT_LEXICON).items()}
        self.negation, self.quotes_as_text = negation, quotes_as_text
        self._patterns: dict[str, list[tuple[tuple[str, ...], str]]] = {
            m: [(tuple(_tokens(surface)), canonical) for canonical, forms in entries.items()
                for surface in (canonical, *forms)]
            for m, entries in self.lexicon.items()
        }

    def extract(self, text: str) -> ExtractionResult:
        """The cues of one reasoning text; empty text is a failed extraction."""
        if not text or not text.strip():
            return ExtractionResult(Cues(), ok=False, error=EMPTY_REASONING)
        quoted = [next(g for g in m.groups() if g is not None).strip(" .,!?") for m in _QUOTED.finditer(text)]
        tokens = _tokens(_QUOTED.sub(" . ", text))
        found = {m: self._find(tokens, patterns) for m, patterns in self._patterns.items()}
        if self.quotes_as_text:
            text_patterns = self._patterns.get("text", [])
            for quote in filter(None, quoted):
                in_quote = self._find(_tokens(quote), text_patterns, negation=False)  # a quote is not negated
                found["text"] = found.get("text", []) + (in_quote or [quote])
        return ExtractionResult(Cues.from_dict(found))

    def extract_many(self, texts: Sequence[str], ids: Sequence[str] | None = None) -> list[ExtractionResult]:
        """`extract` for each text."""
        return [self.extract(t) for t in texts]

    def _find(self, tokens: list[str], patterns: list[tuple[tuple[str, ...], str]], negation: bool = True
              ) -> list[str]:
        hits: list[tuple[int, str]] = []
        for phrase, canonical in patterns:
            for start in self._occurrences(tokens, phrase):
                if not (negation and self.negation and self._negated(tokens, start)):
                    hits.append((start, canonical))
                    break
        ordered = sorted(hits)
        return list(dict.fromkeys(c for _, c in ordered))

    @staticmethod
    def _occurrences(tokens: list[str], phrase: tuple[str, ...]) -> Iterable[int]:
        n = len(phrase)
        for i in range(len(tokens) - n + 1):
            if tuple(tokens[i:i + n]) == phrase:
                yield i
        if n == 2:
            modifier, head = phrase
            for i, tok in enumerate(tokens):
                if tok != head:
                    continue
                j = i + 1
                while j < len(tokens) and j - i <= 3 and _is_filler(tokens[j]):
                    j += 1
                if j < len(tokens) and tokens[j] == modifier:
                    yield i

    @staticmethod
    def _negated(tokens: list[str], start: int) -> bool:
        for tok in reversed(tokens[max(0, start - _NEGATION_WINDOW):start]):
            if tok in ".,;:!?":
                return False
            if tok in _NEGATOR_STEMS or tok.endswith("n't"):
                return True
        return False


# ----------------------------------------------------------------------------------------------- LLM

EXTRACTION_SYSTEM = (
    "You annotate the reasoning texts of a multimodal emotion recognition dataset. From the reasoning you are "
    "given, list the perceptual evidence it states, as short phrases of 2 to 6 words that each make sense on "
    "their own. Sort every phrase into one list: \"visual\" for what is seen (facial expression, gaze, gestures, "
    "posture, body movement, scene); \"audio\" for how the speech sounds (tone, pitch, loudness, speed, voice "
    "quality, sounds such as sighs or laughter); \"text\" only for explicit mentions or quotes of the subtitle or "
    "the spoken words. Take only what the text says; do not infer or add evidence; leave a list empty when the "
    "text has none. A statement that an input is missing or cannot be perceived (\"no video is available\", "
    "\"I cannot hear the voice\") is not evidence: do not list it. Reply with one JSON object and nothing else, "
    "of the form {\"visual\": [...], \"audio\": [...], \"text\": [...]}."
)
EXTRACTION_USER = "Reasoning:\n<<<\n{reasoning}\n>>>\nReturn the JSON object."

_FENCE = re.compile(r"```[a-zA-Z]*")


def _drop_trailing_comma(out: list[str]) -> None:
    while out and out[-1].isspace():
        out.pop()
    if out and out[-1] == ",":
        out.pop()


def _repair(text: str) -> str:
    """One pass that turns single-quoted strings into double-quoted ones, drops trailing commas, replaces a
    mismatched closing bracket by the expected one, closes open strings and brackets, and stops at the end of the
    first top-level value."""
    out: list[str] = []
    stack: list[str] = []
    quote: str | None = None
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\" and i + 1 < len(text):
                out.append(text[i:i + 2])
                i += 2
                continue
            if ch == quote and not (quote == "'" and i + 1 < len(text) and text[i + 1].isalpha()):
                out.append('"')
                quote = None
            elif ch == '"':
                out.append('\\"')
            else:
                out.append("\\n" if ch == "\n" else ch)
        elif ch in "\"'":
            quote = ch
            out.append('"')
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
            out.append(ch)
        elif ch in "}]" and stack:
            _drop_trailing_comma(out)
            out.append(stack.pop())  # a mismatched closer is read as a typo for the expected one
            if not stack:
                break
        else:
            out.append(ch)
        i += 1
    if quote:
        out.append('"')
    while stack:
        _drop_trailing_comma(out)
        out.append(stack.pop())
    return "".join(out)


def parse_cue_json(text: str) -> Cues:
    """Cues from an extractor's JSON answer, repairing the usual damage (code fences, single quotes, trailing
    commas, prose around the object, missing closing brackets); raises ValueError when nothing usable is left."""
    body = _FENCE.sub("", text)
    start = body.find("{")
    if start < 0:
        raise ValueError("no JSON object in the extractor's answer")
    body = body[start:]
    data: Any = None
    for candidate in (body, _repair(body), _repair(body.replace("“", '"').replace("”", '"'))):
        try:
            data = json.loads(candidate)
            break
        except json.JSONDecodeError:
            continue
    if not isinstance(data, dict):
        raise ValueError("the extractor's answer is not a repairable JSON object")
    if not any(canonical_key(k) in MODALITY_KEYS for k in data):
        raise ValueError(f"no visual/audio/text lists in the extractor's JSON (keys: {sorted(data)})")
    return Cues.from_dict({k: v for k, v in data.items() if isinstance(v, (list, str))})


_CHANNEL = r"(video|visuals?|visual (input|information|stream)|images?|frames?|footage|audio|audio (track|input|stream)|recording)"
_UNAVAILABLE = (r"(no|not|without|missing|unavailable|absent|masked|blank|black|empty|silent|muted|removed|lack|lacks"
                r"|lacking|none)")
_ABSENCE = (
    re.compile(r"\b(cannot|can't|can ?not|unable to|impossible to|could ?n[o']t|not possible to)\s+(be\s+)?"
               r"(see|seen|hear|heard|perceive|perceived|observe|observed|tell|assess|determine|judge|make out)\b", re.I),
    re.compile(rf"\b{_UNAVAILABLE}\b.*\b{_CHANNEL}\b|\b{_CHANNEL}\b.*\b{_UNAVAILABLE}\b", re.I),
)


def states_absence(phrase: str) -> bool:
    """Whether a cue phrase only says that an input is missing or cannot be perceived ("no video is available",
    "cannot see the face", "audio is muted"): a statement about the input, not evidence from it. A negated cue ("no
    tears", "voice not trembling") is still a claim about the modality's content."""
    return any(p.search(phrase) for p in _ABSENCE)


class LLMCueExtractor:
    """Cue extraction by an instruction-following model (paper §2.2: an LLM annotator writes 2–6-word visual,
    acoustic and textual cues as JSON); requests go to any `Backend` in batches."""

    def __init__(self, backend: Backend, params: GenerationParams = GenerationParams(max_new_tokens=256), *,
                 batch_size: int = 64, system: str = EXTRACTION_SYSTEM, user: str = EXTRACTION_USER):
        self.backend, self.params, self.batch_size = backend, params, batch_size
        self.system, self.user = system, user

    def request(self, text: str, sample_id: str = "") -> Request:
        """The chat request that asks for the cues of one reasoning text."""
        return Request(messages=(Message("system", (TextPart(self.system),)),
                                 Message("user", (TextPart(self.user.format(reasoning=text.strip())),))),
                       params=self.params, sample_id=sample_id, variant="extract-cues")

    def extract_many(self, texts: Sequence[str], ids: Sequence[str] | None = None) -> list[ExtractionResult]:
        """One result per text; empty texts fail without a request, answers that do not parse fail with the reason."""
        ids = list(ids) if ids is not None else [""] * len(texts)
        results: list[ExtractionResult | None] = [
            ExtractionResult(Cues(), ok=False, error=EMPTY_REASONING) if not (t and t.strip()) else None for t in texts]
        todo = [i for i, r in enumerate(results) if r is None]
        for lo in range(0, len(todo), self.batch_size):
            chunk = todo[lo:lo + self.batch_size]
            responses = self.backend.generate([self.request(texts[i], ids[i]) for i in chunk])
            if len(responses) != len(chunk):
                responses = [Response(error=f"backend returned {len(responses)} answers for {len(chunk)} requests")
                             ] * len(chunk)
            for i, response in zip(chunk, responses):
                results[i] = self._parse(response.text, response.error)
        return [r for r in results if r is not None]

    def extract(self, text: str) -> ExtractionResult:
        """The cues of one reasoning text."""
        return self.extract_many([text])[0]

    @staticmethod
    def _parse(text: str, error: str | None) -> ExtractionResult:
        """The parsed cues without phrases that only state an input's absence (`states_absence`)."""
        if error is not None:
            return ExtractionResult(Cues(), ok=False, error=f"extractor backend error: {error}")
        try:
            cues = parse_cue_json(text)
        except ValueError as exc:
            return ExtractionResult(Cues(), ok=False, error=f"unparseable extractor answer: {exc}")
        return ExtractionResult(Cues(**{m: tuple(c for c in cues.get(m) if not states_absence(c))
                                         for m in MODALITY_KEYS}))
