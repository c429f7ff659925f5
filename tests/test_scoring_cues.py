"""Cue extraction (lexicon and LLM), the embedding cache, and cue recall — hand-computed fixtures, plus the real
default embedder for semantic behaviour."""

from __future__ import annotations


import numpy as np
import pytest

from mepbench.backends.base import Capabilities
from mepbench.scoring import (
    Cues,
    EmbeddingCache,
    ExtractionResult,
    LexiconCueExtractor,
    LLMCueExtractor,
    cue_recall,
    parse_cue_json,
    reasoning_text,
)
from mepbench.scoring.vocabulary import AUDIO_CUES, VISUAL_CUES
from mepbench.synth.cues import reasoning, sample_clip
from mepbench.types import Request, Response

from helpers import FakeEmbedder, real_embedder


# ------------------------------------------------------------------------------------------- Cues


def test_cues_accept_aliases_strip_and_dedupe():
    cues = Cues.from_dict({"visual_clues": [" furrowed brows ", "Furrowed brows", ""], "acoustic": "sigh",
                           "text_cues": ["got the job"], "reasoning_emotions": ["sad"]})
    assert cues == Cues(video=("furrowed brows",), audio=("sigh",), text=("got the job",))
    assert cues.to_dict() == {"video": ["furrowed brows"], "audio": ["sigh"], "text": ["got the job"]}
    assert len(cues) == 3 and cues.get("audio") == ("sigh",)


def test_reasoning_text_prefers_think_and_drops_answer():
    assert reasoning_text("<think> A smile. </think><answer>happy</answer>") == "A smile."
    assert reasoning_text("A smile. <answer>happy</answer>") == "A smile."
    assert reasoning_text("<think>cut off mid-way") == "cut off mid-way"


# ------------------------------------------------------------------------------------------- lexicon

LEX = LexiconCueExtractor()


@pytest.mark.parametrize("text, modality, cue", [
    ("She is smiling.", "video", "smiling mouth"),
    ("A broad smile.", "video", "smiling mouth"),
    ("He smiles at the camera.", "video", "smiling mouth"),
    ("A furrowed brow.", "video", "furrowed brows"),
    ("His brows are furrowed.", "video", "furrowed brows"),
    ("Her eyebrows were raised.", "video", "raised eyebrows"),
    ("Tears run down her cheeks.", "video", "tears"),
    ("His eyes widen.", "video", "wide eyes"),
    ("Her voice trembles.", "audio", "trembling voice"),
    ("A trembling voice.", "audio", "trembling voice"),
    ("The voice is slightly trembling.", "audio", "trembling voice"),
    ("She sighs.", "audio", "sigh"),
    ("He sighed heavily.", "audio", "sigh"),
    ("A high-pitched voice.", "audio", "high pitch"),
    ("The pitch is low.", "audio", "low pitch"),
    ("He speaks quickly.", "audio", "fast speech"),
    ("SHOUTING at the top of his lungs", "audio", "loud voice"),
])
def test_lexicon_handles_inflection_and_word_order(text, modality, cue):
    result = LEX.extract(text)
    assert result.ok and cue in result.cues.get(modality)


@pytest.mark.parametrize("text", ["He is out of sight.", "The brown cat.", "The voiceover is calm.",
                                  "There are no tears.", "She does not smile.", "He doesn't sigh",
                                  "without a trembling voice"])
def test_lexicon_respects_word_boundaries_and_negation(text):
    cues = LEX.extract(text).cues
    assert not set(cues.video) & {"tears", "smiling mouth", "furrowed brows"}
    assert not set(cues.audio) & {"sigh", "trembling voice"}


def test_lexicon_negation_is_scoped_to_the_clause():
    # "no" is in another clause (a comma away), so the smile still counts.
    assert LEX.extract("No doubt, she smiles.").cues.video == ("smiling mouth",)


def test_lexicon_reports_canonical_cues_in_order_and_quoted_text_cues():
    text = 'Her voice trembles and she frowns; the subtitle says "I can\'t smile anymore."'
    cues = LEX.extract(text).cues
    assert cues == Cues(video=("frowning mouth",), audio=("trembling voice",), text=("I can't smile anymore",))


def test_lexicon_empty_reasoning_fails_with_reason():
    result = LEX.extract("   ")
    assert not result.ok and "empty" in result.error


def test_lexicon_custom_lexicon():
    custom = LexiconCueExtractor({"visual": {"clenched jaw": ("jaw clenched",)}, "audio": {}})
    assert custom.extract("His jaw is clenched").cues.video == ("clenched jaw",)


@pytest.mark.parametrize("cue", VISUAL_CUES + AUDIO_CUES)
def test_lexicon_covers_every_synth_cue(cue):
    modality = "video" if cue in VISUAL_CUES else "audio"
    assert cue in LEX.extract(f"We notice a {cue} here.").cues.get(modality)


def test_lexicon_recovers_the_synth_reference_cues_from_synth_reasoning():
    rng = np.random.default_rng(7)
    for _ in range(300):
        spec = sample_clip(rng)
        cues = LEX.extract(reasoning_text(reasoning(spec))).cues
        assert [c for c in cues.video if c in VISUAL_CUES] == list(spec.cues["video"])
        assert [c for c in cues.audio if c in AUDIO_CUES] == list(spec.cues["audio"])
        # the text cue is the subtitle's emotion-bearing phrase; a neutral subtitle has none, so the whole quote
        assert cues.text == (spec.cues["text"] or (spec.subtitle.strip(" .!?"),))


# ------------------------------------------------------------------------------------------- LLM extractor

WANT = Cues(video=("furrowed brows",), audio=("shaky voice",), text=())


@pytest.mark.parametrize("answer", [
    '{"visual": ["furrowed brows"], "audio": ["shaky voice"], "text": []}',
    '```json\n{"visual": ["furrowed brows"], "audio": ["shaky voice"], "text": []}\n```',
    "{'visual': ['furrowed brows'], 'audio': ['shaky voice'], 'text': []}",
    '{"visual": ["furrowed brows",], "audio": ["shaky voice",], "text": [],}',
    'Here are the cues:\n{"visual": ["furrowed brows"], "audio": ["shaky voice"]}\nHope this helps! {',
    '{"visual": ["furrowed brows"], "audio": ["shaky voice"',
    '{"visual_cues": ["furrowed brows"], "audio_cues": ["shaky voice"], "text_cues": []}',
    '{"visual": ["furrowed brows"}, "audio": ["shaky voice"]}',
])
def test_parse_cue_json_repairs_messy_answers(answer):
    assert parse_cue_json(answer) == WANT


def test_parse_cue_json_keeps_apostrophes_in_single_quoted_strings():
    assert parse_cue_json("{'text': ['don't go'], 'visual': []}").text == ("don't go",)


@pytest.mark.parametrize("answer", ["no cues here", '{"emotion": ["sad"]}', "[1, 2]", "{"])
def test_parse_cue_json_rejects_unusable_answers(answer):
    with pytest.raises(ValueError):
        parse_cue_json(answer)


class ListBackend:
    """Answers requests with a fixed list of (text, error) pairs in order; records each generate call."""

    name = "list"
    capabilities = Capabilities()

    def __init__(self, answers: list[tuple[str, str | None]]):
        self.answers, self.batches = list(answers), []

    def fingerprint(self) -> str:
        return "list"

    def describe(self) -> dict[str, object]:
        return {}

    def generate(self, requests: list[Request]) -> list[Response]:
        self.batches.append(requests)
        return [Response(text=t, error=e) for t, e in (self.answers.pop(0) for _ in requests)]


def test_llm_extractor_batches_parses_and_counts_failures():
    good = '```json\n{"visual": ["furrowed brows"], "audio": ["shaky voice"], "text": []}\n```'
    backend = ListBackend([(good, None), ("I cannot help with that.", None), ("", "CUDA out of memory"),
                           ("{'visual': ['tears'], 'audio': [], 'text': ['we lost',]}", None)])
    extractor = LLMCueExtractor(backend, batch_size=2)
    texts = ["Her brows are furrowed; her voice shakes.", "", "text three", "text four", "Tears. 'we lost'"]
    results = extractor.extract_many(texts, ids=["a", "b", "c", "d", "e"])
    assert [len(b) for b in backend.batches] == [2, 2]  # four non-empty texts, the empty one costs no request
    assert results[0] == ExtractionResult(WANT)
    assert not results[1].ok and "empty" in results[1].error
    assert not results[2].ok and "unparseable" in results[2].error
    assert not results[3].ok and "CUDA out of memory" in results[3].error
    assert results[4].cues == Cues(video=("tears",), text=("we lost",))
    request = backend.batches[0][0]
    assert [m.role for m in request.messages] == ["system", "user"]
    assert "Her brows are furrowed" in request.messages[1].text() and "JSON" in request.messages[0].text()
    assert request.params.max_new_tokens == 256 and request.sample_id == "a"


# ------------------------------------------------------------------------------------------- cache

def test_embedding_cache_encodes_each_unique_text_once_and_persists(tmp_path):
    fake = FakeEmbedder({"a": (1, 0), "b": (0, 2), "c": (3, 4)})
    cache = EmbeddingCache(fake, cache_dir=tmp_path)
    first = cache.encode(["a", "b", "a"])
    second = cache.encode(["b", "c"])
    assert fake.calls == [["a", "b"], ["c"]] and cache.encoded == 3
    np.testing.assert_allclose(first, [[1, 0], [0, 1], [1, 0]])
    np.testing.assert_allclose(second, [[0, 1], [0.6, 0.8]])  # rows re-normalised
    assert cache.encode([]).shape == (0, 2)
    cache.close()
    fresh = FakeEmbedder(fake.table)
    reloaded = EmbeddingCache(fresh, cache_dir=tmp_path)
    np.testing.assert_allclose(reloaded.encode(["c", "a"]), [[0.6, 0.8], [1, 0]])
    assert fresh.calls == []
    reloaded.close()


def test_embedding_cache_bounded_memory_evicts_least_recently_used():
    fake = FakeEmbedder({"a": (1, 0), "b": (0, 1), "c": (1, 1)})
    cache = EmbeddingCache(fake, max_entries=2)
    cache.encode(["a", "b"])
    cache.encode(["a"])          # a is now the most recent
    cache.encode(["c"])          # evicts b
    cache.encode(["a", "b"])     # only b is encoded again
    assert fake.calls == [["a", "b"], ["c"], ["b"]] and len(cache) == 2


# ------------------------------------------------------------------------------------------- recall

# 4-d unit vectors; the cosines used below are A·B = 0.8, E·D = 0.8, and 0 for every other cross-pair compared.
TABLE = {
    "furrowed brows": (1, 0, 0, 0),        # A
    "brows are furrowed": (0.8, 0.6, 0, 0),  # B
    "tears": (0, 0, 1, 0),                 # C
    "high pitch": (0, 0, 0, 1),            # D
    "raised voice": (0, 0.6, 0, 0.8),      # E
}


def test_cue_recall_hand_computed():
    refs = [
        {"video": ["furrowed brows", "tears"], "audio": ["high pitch"]},   # s1
        {"video": ["tears"]},                                              # s2
        {"audio": ["high pitch"]},                                         # s3 (extraction failed)
        {},                                                                # s4 (no reference cue)
    ]
    preds = [
        Cues(video=("brows are furrowed",), audio=("raised voice",)),
        Cues(video=("brows are furrowed",), audio=("raised voice",)),
        ExtractionResult(Cues(), ok=False, error="unparseable"),
        Cues(video=("furrowed brows",)),
    ]
    report = cue_recall(refs, preds, FakeEmbedder(TABLE), tau=0.6, ids=["s1", "s2", "s3", "s4"], resamples=200)
    s1, s2, s3, s4 = report.records
    # s1 video: A→B 0.8 ≥ 0.6 hit, C→B 0 miss → 1/2; audio D→E 0.8 hit → 1; pooled V+A 2/3;
    # precision: B→A 0.8 and E→D 0.8 both hit → 1.
    assert s1.recall == {"video": 0.5, "audio": 1.0, "text": None, "overall": pytest.approx(2 / 3)}
    assert s1.precision == {"video": 1.0, "audio": 1.0, "text": None, "overall": 1.0}
    assert s1.reference["video"][0].best == "brows are furrowed"
    assert s1.reference["video"][0].similarity == pytest.approx(0.8)
    # s2 video: C→B 0 → 0; audio has no reference (excluded) and its prediction E matches nothing → precision 0.
    assert s2.recall == {"video": 0.0, "audio": None, "text": None, "overall": 0.0}
    assert s2.precision == {"video": 0.0, "audio": 0.0, "text": None, "overall": 0.0}
    # s3 failed: recall 0 where there are references, no precision.
    assert not s3.ok and s3.recall == {"video": None, "audio": 0.0, "text": None, "overall": 0.0}
    assert set(s3.precision.values()) == {None}
    # s4: nothing to recall anywhere; its one predicted cue is unsupported.
    assert set(s4.recall.values()) == {None} and s4.precision["video"] == 0.0
    # macro: video (0.5 + 0)/2, audio (1 + 0)/2, overall (2/3 + 0 + 0)/3; precision video (1 + 0 + 0)/3.
    assert report.recall["video"].value == pytest.approx(0.25)
    assert report.recall["audio"].value == pytest.approx(0.5)
    assert report.recall["overall"].value == pytest.approx(2 / 9)
    assert report.precision["video"].value == pytest.approx(1 / 3)
    assert report.excluded == {"video": 2, "audio": 2, "text": 4, "overall": 1}
    assert report.n_failed == 1 and report.n_samples == 4
    assert np.isnan(report.recall["text"].value)
    est = report.recall["overall"]
    assert est.ci_low <= est.value <= est.ci_high


def test_cue_recall_threshold_is_configurable_and_encodes_once():
    fake = FakeEmbedder(TABLE)
    refs = [{"video": ["furrowed brows"]}] * 3
    preds = [Cues(video=("brows are furrowed",))] * 3
    assert cue_recall(refs, preds, fake, tau=0.85).recall["video"].value == 0.0
    assert fake.calls == [["furrowed brows", "brows are furrowed"]]


def test_cue_recall_rejects_length_mismatch():
    with pytest.raises(ValueError):
        cue_recall([{}], [], FakeEmbedder(TABLE))


# ------------------------------------------------------------------------------------------- real embedder

class Counting:
    """Wraps an embedder and counts how many texts reach it."""

    def __init__(self, inner):
        self.inner, self.name, self.texts = inner, inner.name, 0

    def encode(self, texts):
        self.texts += len(texts)
        return self.inner.encode(texts)


def test_real_embedder_matches_paraphrases_not_other_cues():
    real = real_embedder()
    report = cue_recall(
        [{"video": ["furrowed brows"], "audio": ["trembling voice"]}],
        [Cues(video=("brows are furrowed",), audio=("her voice trembles",))], real)
    assert report.recall["overall"].value == 1.0
    vectors = real.encode(["furrowed brows", "brows are furrowed", "high pitch"])
    assert vectors.dtype == np.float32 and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert vectors[0] @ vectors[1] >= 0.6 > vectors[0] @ vectors[2]
    mismatch = cue_recall([{"video": ["furrowed brows"]}], [Cues(video=("high pitch",))], real)
    assert mismatch.recall["video"].value == 0.0


def test_real_embedder_cache_encodes_each_unique_text_once():
    counting = Counting(real_embedder().embedder)
    cache = EmbeddingCache(counting)
    cache.encode(["a smile", "tears", "a smile"])
    cache.encode(["tears", "a sigh"])
    cue_recall([{"video": ["a smile"]}, {"video": ["a smile"]}], [Cues(video=("tears",))] * 2, cache)
    assert counting.texts == 3
