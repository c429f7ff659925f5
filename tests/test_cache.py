"""Cache keys (a prompt edit invalidates, a rerun hits) and the SQLite store."""

from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf

from mepbench.cache import ResponseCache, request_key
from mepbench.media import MediaError
from mepbench.types import AudioPart, GenerationParams, Message, Modality, Request, Response, TextPart


@pytest.fixture
def wav(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, np.zeros(1600, np.float32), 16000)
    return path


def _request(wav, text="How does she feel?", **kw):
    return Request((Message("user", (AudioPart(str(wav)), TextPart(text))),), **kw)


def test_key_is_stable_and_sensitive_to_everything_that_changes_output(wav, tmp_path):
    base = request_key(_request(wav), "m1")
    assert base == request_key(_request(wav), "m1")
    assert base != request_key(_request(wav, text="How does he feel?"), "m1")
    assert base != request_key(_request(wav), "m2")
    assert base != request_key(_request(wav, params=GenerationParams(max_new_tokens=7)), "m1")
    assert base != request_key(_request(wav, zero_features=frozenset({Modality.AUDIO})), "m1")
    blank = Request((Message("user", (AudioPart(str(wav), blank=True), TextPart("How does she feel?"))),))
    assert base != request_key(blank, "m1")
    sf.write(wav, np.ones(1600, np.float32) * 0.1, 16000)
    assert base != request_key(_request(wav), "m1"), "new media bytes must change the key"


def test_key_ignores_path_and_sample_id_unless_keyed(wav, tmp_path):
    copy = tmp_path / "copy.wav"
    copy.write_bytes(wav.read_bytes())
    assert request_key(_request(wav), "m") == request_key(_request(copy), "m")
    a, b = replace(_request(wav), sample_id="x"), replace(_request(wav), sample_id="y")
    assert request_key(a, "m") == request_key(b, "m")
    assert request_key(a, "m", keyed_by_sample=True) != request_key(b, "m", keyed_by_sample=True)


def test_missing_media_raises_naming_the_file(tmp_path):
    with pytest.raises(MediaError, match="missing media file.*nope.wav"):
        request_key(_request(tmp_path / "nope.wav"), "m")


def test_store_round_trip_skips_errors_and_survives_reopen(tmp_path):
    cache = ResponseCache(tmp_path)
    cache.put_many([("k1", Response(text="hi", completion_tokens=2)), ("k2", Response(error="boom"))], "m")
    cache.close()
    cache = ResponseCache(tmp_path)
    got = cache.get_many(["k1", "k2", "k3"])
    assert list(got) == ["k1"] and got["k1"].text == "hi" and got["k1"].completion_tokens == 2
    assert cache.info()["entries"] == 1
    assert (tmp_path / "responses.jsonl").read_text().count("\n") == 1
    assert cache.clear("other") == 0 and cache.clear("m") == 1 and cache.get_many(["k1"]) == {}
