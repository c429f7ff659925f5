"""Each mask mode changes exactly the masked modality and leaves the other two untouched."""

import pytest

from mepbench.masking import ALL_VARIANTS, FULL, MaskMode, Variant, applied_modes, apply_mask, effective_mode
from mepbench.types import AudioPart, Modality, Sample, VideoPart

SAMPLE = Sample(id="s1", video="/d/s1.mp4", audio="/d/s1.wav", subtitle="I got the job!")


def _fields(view):
    return {Modality.VIDEO: view.video, Modality.AUDIO: view.audio, Modality.TEXT: view.subtitle,
            "zero": view.zero_features}


@pytest.mark.parametrize("mode", list(MaskMode))
@pytest.mark.parametrize("modality", list(Modality))
def test_mask_changes_exactly_one_modality(mode, modality):
    full = _fields(apply_mask(SAMPLE, FULL, mode))
    masked = _fields(apply_mask(SAMPLE, Variant.of(modality), mode))
    changed = {k for k in full if full[k] != masked[k]}
    if mode is MaskMode.ZERO_FEATURES and modality is not Modality.TEXT:
        assert changed == {"zero"} and masked["zero"] == {modality}
    else:
        assert changed == {modality}


def test_full_variant_keeps_everything():
    view = apply_mask(SAMPLE, FULL, MaskMode.DROP)
    assert view.video == VideoPart("/d/s1.mp4") and view.audio == AudioPart("/d/s1.wav")
    assert view.subtitle == "I got the job!" and not view.zero_features


def test_modes_differ_in_how_they_mask():
    assert apply_mask(SAMPLE, Variant.of(Modality.VIDEO), MaskMode.DROP).video is None
    assert apply_mask(SAMPLE, Variant.of(Modality.VIDEO), MaskMode.BLANK).video == VideoPart("/d/s1.mp4", blank=True)
    assert apply_mask(SAMPLE, Variant.of(Modality.AUDIO), MaskMode.BLANK).audio == AudioPart("/d/s1.wav", blank=True)
    assert apply_mask(SAMPLE, Variant.of(Modality.TEXT), MaskMode.DROP).subtitle is None
    assert apply_mask(SAMPLE, Variant.of(Modality.TEXT), MaskMode.BLANK).subtitle == ""
    assert effective_mode(Modality.TEXT, MaskMode.ZERO_FEATURES) is MaskMode.BLANK
    assert applied_modes(Variant.parse("mask:text+video"), MaskMode.ZERO_FEATURES) == {
        "video": "zero-features", "text": "blank"}
    assert effective_mode(Modality.VIDEO, MaskMode.ZERO_FEATURES) is MaskMode.ZERO_FEATURES


def test_variant_names_round_trip_and_reject_unknown():
    assert [v.name for v in ALL_VARIANTS] == ["full", "mask:video", "mask:audio", "mask:text"]
    assert all(Variant.parse(v.name) == v for v in ALL_VARIANTS)
    only_text = Variant.parse("only:text")
    assert only_text == Variant.parse("mask:audio+video") and only_text.name == "mask:video+audio"
    for bad in ("mask:smell", "mask:", "only:video+smell", "partial:video"):
        with pytest.raises(ValueError, match="unknown variant"):
            Variant.parse(bad)


@pytest.mark.parametrize("mode", list(MaskMode))
def test_text_only_variant_masks_both_media_and_keeps_subtitle(mode):
    view = apply_mask(SAMPLE, Variant.parse("only:text"), mode)
    assert view.subtitle == "I got the job!"
    if mode is MaskMode.ZERO_FEATURES:
        assert view.zero_features == {Modality.VIDEO, Modality.AUDIO}
    else:
        assert {view.video is None or view.video.blank, view.audio is None or view.audio.blank} == {True}
