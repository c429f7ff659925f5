"""Media decoding on real generated files: frames, audio tracks inside mp4, wav resampling, bad files."""

import os

import numpy as np
import pytest
import soundfile as sf

from mepbench.media import MediaError, audio_duration, decode_audio, decode_video, file_hash, uniform_indices
from mepbench.synth import generate_suite


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    return generate_suite(tmp_path_factory.mktemp("media") / "suite", n=2, seed=5)


def test_video_frames_uniformly_sampled_and_resized(suite):
    frames = decode_video(suite / "clips/synth-00000.mp4", num_frames=4, size=56)
    assert frames.shape == (4, 56, 56, 3) and frames.dtype == np.uint8
    assert frames.std() > 5, "a drawn face, not a flat frame"
    many = decode_video(suite / "clips/synth-00000.mp4", num_frames=40, size=28)
    assert many.shape == (40, 28, 28, 3), "short clips repeat frames to the requested count"


def test_uniform_indices():
    assert uniform_indices(16, 4) == [2, 6, 10, 14]
    assert uniform_indices(3, 5) == [0, 0, 1, 2, 2]  # centres 0.3 0.9 1.5 2.1 2.7
    assert uniform_indices(0, 4) == []


def test_audio_track_inside_mp4_matches_the_wav(suite):
    wav = decode_audio(suite / "clips/synth-00001.wav")
    track = decode_audio(suite / "clips/synth-00001.mp4")
    assert wav.dtype == np.float32 and abs(len(wav) - 32000) <= 160
    n = min(len(wav), len(track))
    lags = range(-1200, 1201, 8)
    corr = max(np.corrcoef(wav[2000:n - 2000], np.roll(track[:n], -lag)[2000:n - 2000])[0, 1] for lag in lags)
    assert corr > 0.8, "AAC track decodes to the same signal (up to codec delay)"
    assert audio_duration(suite / "clips/synth-00001.wav") == pytest.approx(2.0, abs=0.01)


def test_wav_resampled_and_downmixed(tmp_path):
    t = np.arange(44100) / 44100
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.zeros_like(t)], axis=1).astype(np.float32)
    sf.write(tmp_path / "s.wav", stereo, 44100)
    wave = decode_audio(tmp_path / "s.wav")
    assert len(wave) == 16000 and np.abs(wave).max() == pytest.approx(0.5, abs=0.02)
    spectrum = np.abs(np.fft.rfft(wave))
    assert abs(np.argmax(spectrum) - 440) <= 1, "pitch preserved by resampling"


def test_bad_and_missing_files_name_the_file(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    with pytest.raises(MediaError, match="cannot decode video.*bad.mp4"):
        decode_video(bad)
    with pytest.raises(MediaError, match="missing media file.*gone.wav"):
        decode_audio(tmp_path / "gone.wav")
    (tmp_path / "bad.wav").write_bytes(b"RIFF....WAVEjunk")
    with pytest.raises(MediaError, match="cannot decode audio.*bad.wav"):
        decode_audio(tmp_path / "bad.wav")


def test_file_hash_follows_content(tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(b"a")
    first = file_hash(path)
    path.write_bytes(b"bb")
    assert file_hash(path) != first and len(first) == 64


def test_decoded_media_are_kept_per_file_version_and_returned_as_copies(suite, tmp_path, monkeypatch):
    from mepbench import media

    calls = []
    real = media._decode_video
    monkeypatch.setattr(media, "_decode_video", lambda p, n, s: calls.append(p.name) or real(p, n, s))
    monkeypatch.setattr(media, "DECODED", media.DecodedCache(64 << 20))
    clip = suite / "clips" / "synth-00000.mp4"
    first = decode_video(clip)
    first[:] = 0  # a caller's changes never reach the kept array
    again = decode_video(clip)
    assert calls == ["synth-00000.mp4"] and again.any()
    decode_video(clip, num_frames=4)  # other decoding arguments: another entry
    copy = tmp_path / "clip.mp4"
    copy.write_bytes(clip.read_bytes())
    decode_video(copy)
    copy.write_bytes(clip.read_bytes()[:-10] + b"0123456789")  # same path and size, new contents: decoded again
    os.utime(copy, ns=(copy.stat().st_atime_ns, copy.stat().st_mtime_ns + 10**9))
    try:
        decode_video(copy)
    except MediaError:
        pass
    assert calls == ["synth-00000.mp4", "synth-00000.mp4", "clip.mp4", "clip.mp4"]


def test_decoded_cache_evicts_the_least_recently_used_past_its_byte_budget(tmp_path):
    from mepbench.media import DecodedCache

    files = []
    for k in range(3):
        path = tmp_path / f"{k}.bin"
        path.write_bytes(bytes([k]))
        files.append(path)
    decoded = []
    cache = DecodedCache(max_bytes=2 * 1000)
    get = lambda p: cache.get(p, (), lambda q: decoded.append(q.name) or np.zeros(1000, np.uint8))  # noqa: E731
    get(files[0]), get(files[1]), get(files[0]), get(files[2])  # 1 is the least recently used when 2 arrives
    get(files[0])
    get(files[1])
    assert decoded == ["0.bin", "1.bin", "2.bin", "1.bin"] and cache.nbytes == 2000
    cache.resize(0)
    get(files[0]), get(files[0])
    assert decoded[-2:] == ["0.bin", "0.bin"] and cache.nbytes == 0  # a zero budget keeps nothing
