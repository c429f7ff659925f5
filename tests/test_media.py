"""Media decoding on real generated files: frames, audio tracks inside mp4, wav resampling, bad files."""

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
