"""Claims under masking and grounded recall, hand-computed: a claim is a cue of the masked modality, a statement that
the modality is missing is not, failures are counted and never improve a score."""

from __future__ import annotations

import pytest

from mepbench.scoring import (
    Cues,
    ExtractionResult,
    LexiconCueExtractor,
    LLMCueExtractor,
    RecallRecord,
    claim_consistency,
    grounded_recall,
    states_absence,
)
from test_scoring_cues import ListBackend

LEX = LexiconCueExtractor()


@pytest.mark.parametrize("text, video, audio", [
    ("The face is relaxed.", ("relaxed face",), ()),
    ("Her brows are furrowed and her voice trembles.", ("furrowed brows",), ("trembling voice",)),
    ("No video is available, so I cannot see the face.", (), ()),
    ("I cannot see the face; I cannot hear the voice.", (), ()),
    ("There is no audio in this clip. The face shows no tears.", (), ()),
])
def test_lexicon_claims_versus_statements_of_absence(text, video, audio):
    cues = LEX.extract(text).cues
    assert (cues.video, cues.audio) == (video, audio)


@pytest.mark.parametrize("phrase, absence", [
    ("no video is available", True), ("I cannot see the face", True), ("cannot hear the voice", True),
    ("the audio track is silent", True), ("video frames are black", True), ("no visual information", True),
    ("relaxed face", False), ("no tears", False), ("voice not trembling", False), ("frowning mouth", False),
    ("no sound of laughter", False), ("blank expression", False),
])
def test_states_absence(phrase, absence):
    assert states_absence(phrase) is absence


def test_llm_extractor_drops_statements_of_absence_but_keeps_negated_cues():
    answer = ('{"visual": ["no video is available", "cannot see the face", "relaxed face", "no tears"], '
              '"audio": ["audio is muted"], "text": []}')
    result = LLMCueExtractor(ListBackend([(answer, None)])).extract("anything")
    assert result.ok and result.cues == Cues(video=("relaxed face", "no tears"))


def ok(video=(), audio=()):
    return ExtractionResult(Cues(video=video, audio=audio))


def test_claim_rate_and_claims_per_response_by_hand():
    results = [ok(("relaxed face",)), ok(), ok(("tears", "wide eyes")), ok(audio=("sigh",)),
               ExtractionResult(Cues(), ok=False, error="server down")]
    report = claim_consistency(results, "video", "mask:video", resamples=200)
    # 4 extractions: 2 claim a visual cue (1 and 2 cues), the audio claim does not count, the failure is left out
    assert (report.n, report.n_claiming, report.n_failed) == (4, 2, 1)
    assert report.rate.value == 0.5 and report.per_response.value == 0.75
    assert 0.0 <= report.rate.ci_low <= 0.5 <= report.rate.ci_high <= 1.0
    assert report.to_dict()["variant"] == "mask:video"
    assert claim_consistency([ok()] * 3, "video", "mask:video").rate.value == 0.0


def record(sample_id, recall, ok=True):
    return RecallRecord(sample_id, ok, None if ok else "failed", {"video": recall}, {}, {}, {})


def test_grounded_recall_pairs_samples_and_drops_failures():
    full = [record("a", 1.0), record("b", 0.5), record("c", None), record("d", 1.0), record("e", 0.0, ok=False)]
    masked = [record("a", 0.0), record("b", 0.5), record("c", 0.0), record("d", 0.0, ok=False), record("e", 0.0)]
    g = grounded_recall(full, masked, "video", "mask:video", resamples=300)
    # pairs a (1 − 0) and b (0.5 − 0.5); c has no video cue; d and e failed on one side
    assert (g.n, g.n_failed) == (2, 2)
    assert g.value.value == pytest.approx(0.5) and g.full == 0.75 and g.masked == 0.25
    assert -1.0 <= g.value.ci_low <= 0.5 <= g.value.ci_high <= 1.0
    assert g.to_dict()["interval"].startswith("paired")
