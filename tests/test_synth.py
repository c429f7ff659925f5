"""Tests of the mep-synth suite: determinism, media formats, visible/audible cues, the generative model,
idempotent atomic generation and label balance."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from mepbench.scoring.vocabulary import AUDIO_CUES, SUBTITLES, VISUAL_CUES
from mepbench.synth import EMOTIONS, SUITE_VERSION, generate_suite
from mepbench.synth.cues import (AUDIO_PROFILES, MODALITIES, NEUTRAL_SUBTITLES, VISUAL_PROFILES, decided_by,
                                 reasoning, sample_clip)
from mepbench.synth.faces import N_FRAMES, SIZE, face_layout, random_style, render_face, render_frames
from mepbench.synth.suite import clip_rngs
from mepbench.synth.voice import DURATION_S, SAMPLE_RATE, render_voice

N = 12


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_suite(tmp_path_factory.mktemp("synth") / "suite", n=N, seed=0)


def _manifest(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines()]


def _wav_bytes(root: Path) -> list[bytes]:
    return [(root / "clips" / f"synth-{i:05d}.wav").read_bytes() for i in range(N)]


def _specs(count: int, seed: int = 0) -> list:
    return [sample_clip(clip_rngs(seed, i)[0]) for i in range(count)]


# --- determinism and formats -------------------------------------------------------------------------

def test_same_seed_same_bytes_different_seed_differs(suite: Path, tmp_path: Path) -> None:
    again = generate_suite(tmp_path / "again", n=N, seed=0)
    assert (again / "manifest.jsonl").read_bytes() == (suite / "manifest.jsonl").read_bytes()
    assert _wav_bytes(again) == _wav_bytes(suite)
    other = generate_suite(tmp_path / "other", n=N, seed=1)
    assert (other / "manifest.jsonl").read_bytes() != (suite / "manifest.jsonl").read_bytes()
    assert all(a != b for a, b in zip(_wav_bytes(other), _wav_bytes(suite)))


def test_clips_do_not_depend_on_n(suite: Path, tmp_path: Path) -> None:
    shorter = generate_suite(tmp_path / "short", n=5, seed=0)
    assert _manifest(shorter) == _manifest(suite)[:5]


def test_mp4_has_16_frames_and_an_audio_track_matching_the_wav(suite: Path) -> None:
    path = suite / "clips" / "synth-00003.mp4"
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        assert container.streams.video[0].codec_context.pix_fmt == "yuv420p"
        assert container.streams.audio, "mp4 has no audio stream"
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        track = np.concatenate([r.to_ndarray().reshape(-1) for f in container.decode(audio=0)
                                for r in resampler.resample(f)])
    assert len(frames) == N_FRAMES and all(f.shape == (SIZE, SIZE, 3) for f in frames)
    wav, _ = sf.read(str(path.with_suffix(".wav")), dtype="float32")
    assert len(track) >= len(wav) - 1024
    assert np.corrcoef(track[:30000], wav[:30000])[0, 1] > 0.99


def test_wav_is_16k_mono_pcm16_of_two_seconds(suite: Path) -> None:
    info = sf.info(str(suite / "clips" / "synth-00000.wav"))
    assert (info.samplerate, info.channels, info.subtype) == (16_000, 1, "PCM_16")
    assert info.frames == int(2.0 * 16_000)


def test_manifest_records_are_complete_and_consistent(suite: Path) -> None:
    records = _manifest(suite)
    assert [r["id"] for r in records] == [f"synth-{i:05d}" for i in range(N)]
    info = json.loads((suite / "suite.json").read_text())
    assert (info["version"], info["n"], info["seed"]) == (SUITE_VERSION, N, 0)
    for r in records:
        assert (suite / r["video"]).is_file() and (suite / r["audio"]).is_file()
        assert r["label"] in EMOTIONS and r["subtitle"]
        match = re.fullmatch(r"<think>(.+)</think><answer>(\w+)</answer>", r["reasoning"], flags=re.S)
        assert match and match.group(2) == r["label"]
        for cue in r["cues"]["video"] + r["cues"]["audio"] + r["cues"]["text"]:
            assert cue in match.group(1)
        for modality, emotion in r["metadata"]["conflict_emotion"].items():
            assert (emotion is not None) == (r["metadata"]["conditions"][modality] == "conflict")


# --- visual cues -------------------------------------------------------------------------------------

def _region(img: np.ndarray, centre: tuple[float, float], dx: int, top: int, bottom: int) -> np.ndarray:
    x, y = int(round(centre[0])), int(round(centre[1]))
    return img[y + top:y + bottom, x - dx:x + dx]


def test_open_mouth_darkens_the_mouth_region() -> None:
    style = random_style(np.random.default_rng(3))
    mouth = face_layout(style, 0).mouth
    neutral = _region(render_face([], style, 0), mouth, 9, -8, 8).mean()
    open_mouth = _region(render_face(["open mouth"], style, 0), mouth, 9, -8, 8).mean()
    assert open_mouth < neutral - 30


def test_tears_add_blue_pixels_under_the_eyes() -> None:
    def blue_under_eyes(img: np.ndarray, style) -> int:
        layout = face_layout(style, 2)
        count = 0
        for eye in (layout.left_eye, layout.right_eye):
            px = _region(img, eye, 8, 6, 26).astype(int)
            count += int(np.sum((px[..., 2] > px[..., 0] + 60) & (px[..., 2] > px[..., 1] + 30)))
        return count

    for seed in range(4):
        style = random_style(np.random.default_rng(seed))
        assert blue_under_eyes(render_face([], style, 2), style) == 0
        assert blue_under_eyes(render_face(["tears"], style, 2), style) > 10


@pytest.mark.parametrize("cue", VISUAL_CUES)
def test_every_visual_cue_changes_the_face(cue: str) -> None:
    style = random_style(np.random.default_rng(7))
    frame = (style.blink_frame + 1) % N_FRAMES
    diff = np.abs(render_face([cue], style, frame).astype(int) - render_face([], style, frame).astype(int))
    assert np.sum(diff.max(axis=-1) > 40) > 15


def test_frames_move_and_styles_vary() -> None:
    style = random_style(np.random.default_rng(0))
    frames = render_frames(["smiling mouth"], style)
    assert frames.shape == (N_FRAMES, SIZE, SIZE, 3) and frames.dtype == np.uint8
    assert sum(not np.array_equal(frames[i], frames[i + 1]) for i in range(N_FRAMES - 1)) >= N_FRAMES // 2
    other = random_style(np.random.default_rng(1))
    assert not np.array_equal(render_face([], style, 0), render_face([], other, 0))


# --- audio cues --------------------------------------------------------------------------------------

def _loudest(wave: np.ndarray, n: int = 640) -> np.ndarray:
    energies = [np.sum(wave[i:i + n] ** 2) for i in range(0, len(wave) - n, 160)]
    start = int(np.argmax(energies)) * 160
    return wave[start:start + n]


def _autocorr(x: np.ndarray) -> np.ndarray:
    x = x - x.mean()
    ac = np.correlate(x, x, "full")[len(x) - 1:]
    return ac / ac[0]


def _f0(wave: np.ndarray) -> float:
    ac = _autocorr(_loudest(wave))
    lo, hi = SAMPLE_RATE // 400, SAMPLE_RATE // 60
    return SAMPLE_RATE / (lo + int(np.argmax(ac[lo:hi])))


def _rms(wave: np.ndarray) -> float:
    return float(np.sqrt(np.mean(wave ** 2)))


def test_voice_is_two_seconds_of_bounded_float32() -> None:
    wave = render_voice(["loud voice", "high pitch"], np.random.default_rng(0))
    assert wave.shape == (int(DURATION_S * SAMPLE_RATE),) and wave.dtype == np.float32
    assert np.abs(wave).max() <= 1.0


@pytest.mark.parametrize("seed", range(4))
def test_pitch_cues_set_the_fundamental(seed: int) -> None:
    high = _f0(render_voice(["high pitch"], np.random.default_rng(seed)))
    low = _f0(render_voice(["low pitch"], np.random.default_rng(seed)))
    mid = _f0(render_voice([], np.random.default_rng(seed)))
    assert 190 < high < 290 and 85 < low < 130
    assert low < mid < high


@pytest.mark.parametrize("seed", range(4))
def test_loudness_cues_set_the_level(seed: int) -> None:
    loud = _rms(render_voice(["loud voice"], np.random.default_rng(seed)))
    soft = _rms(render_voice(["soft voice"], np.random.default_rng(seed)))
    assert loud > 3 * soft


def test_speech_rate_cues_change_syllable_count() -> None:
    def syllables(wave: np.ndarray) -> int:
        frames = np.sqrt(np.mean(wave[: len(wave) // 160 * 160].reshape(-1, 160) ** 2, axis=1))
        active = frames > 0.25 * frames.max()
        return int(np.sum(active[1:] & ~active[:-1]) + active[0])

    for seed in range(3):
        fast = syllables(render_voice(["fast speech"], np.random.default_rng(seed)))
        slow = syllables(render_voice(["slow speech"], np.random.default_rng(seed)))
        assert fast > slow + 3


def test_sigh_is_an_aperiodic_tail_after_voiced_speech() -> None:
    wave = render_voice(["low pitch", "soft voice", "slow speech", "sigh"], np.random.default_rng(2))
    tail = wave[int(1.45 * SAMPLE_RATE):int(1.45 * SAMPLE_RATE) + 640]
    lags = slice(SAMPLE_RATE // 400, SAMPLE_RATE // 60)
    assert _rms(tail) > 0.1 * _rms(_loudest(wave))
    assert _autocorr(tail)[lags].max() < 0.4
    assert _autocorr(_loudest(wave))[lags].max() > 0.6


# --- generative model --------------------------------------------------------------------------------

def test_cue_sets_identify_their_emotion() -> None:
    from itertools import combinations

    for profiles in (VISUAL_PROFILES, AUDIO_PROFILES):
        shown = {e: {p.core + extra for k in range(len(p.optional) + 1) for extra in combinations(p.optional, k)}
                 for e, p in profiles.items()}
        for a in EMOTIONS:
            for b in EMOTIONS:
                if a != b:
                    assert not {frozenset(s) for s in shown[a]} & {frozenset(s) for s in shown[b]}
    assert {c for p in VISUAL_PROFILES.values() for c in p.all} == set(VISUAL_CUES)
    assert {c for p in AUDIO_PROFILES.values() for c in p.all} == set(AUDIO_CUES)
    features = ({"smiling mouth", "frowning mouth", "open mouth"}, {"raised eyebrows", "furrowed brows"})
    for p in VISUAL_PROFILES.values():  # a face can draw every cue of its set at once
        assert all(len(group & p.all) <= 1 for group in features)


def test_conditions_decide_which_cues_each_modality_shows() -> None:
    specs = _specs(600, seed=5)
    profiles = {"video": VISUAL_PROFILES, "audio": AUDIO_PROFILES}
    seen = Counter()
    for spec in specs:
        conditions = [spec.conditions[m] for m in MODALITIES]
        assert conditions.count("agree") > conditions.count("conflict")
        if spec.label != "neutral":
            assert "agree" in conditions
        else:
            assert "missing" not in conditions
        for m in MODALITIES:
            condition, emotion = spec.conditions[m], spec.conflict_emotion[m]
            seen[condition] += 1
            shown = {"agree": spec.label, "missing": "neutral", "conflict": emotion}[condition]
            if condition == "conflict":
                assert emotion not in (spec.label, "neutral")
            if m == "text":
                if shown == "neutral":
                    assert spec.cues["text"] == () and spec.subtitle in NEUTRAL_SUBTITLES
                else:
                    assert (spec.subtitle, spec.cues["text"][0]) in SUBTITLES[shown]
                    assert spec.cues["text"][0].lower() in spec.subtitle.lower()
            else:
                cues = set(spec.cues[m])
                assert set(profiles[m][shown].core) <= cues <= profiles[m][shown].all
    assert min(seen.values()) > 80


def test_reasoning_names_conflicts() -> None:
    conflicted = [s for s in _specs(200) if "conflict" in s.conditions.values()]
    assert conflicted
    for spec in conflicted:
        text = reasoning(spec)
        for m, emotion in spec.conflict_emotion.items():
            if emotion:
                assert f"suggests {emotion}, but" in text
        assert text.endswith(f"so the emotion is {spec.label}.</think><answer>{spec.label}</answer>")


def test_every_modality_alone_decides_some_clips_and_the_others_carry_no_label() -> None:
    specs = _specs(600, seed=3)
    counts = Counter(decided_by(s) for s in specs)
    assert {"video", "audio", "text", "none"} <= set(counts)
    assert all(counts[m] >= 40 for m in ("video", "audio", "text")), counts
    assert sum(c for k, c in counts.items() if "+" in k) > 200, counts
    for spec in specs:
        single = decided_by(spec)
        if single in MODALITIES:
            others = [m for m in MODALITIES if m != single]
            assert all(spec.conditions[m] == "missing" for m in others)
            assert all(not spec.cues[m] for m in others)


def test_labels_are_roughly_uniform() -> None:
    counts = Counter(spec.label for spec in _specs(300))
    assert set(counts) == set(EMOTIONS)
    assert all(30 <= c <= 72 for c in counts.values()), counts


# --- idempotent, atomic generation -------------------------------------------------------------------

def test_second_call_reuses_the_suite(tmp_path: Path) -> None:
    root = generate_suite(tmp_path / "s", n=3, seed=0)
    files = [root / "manifest.jsonl", root / "suite.json", root / "clips" / "synth-00000.wav"]
    before = [f.stat().st_mtime_ns for f in files]
    assert generate_suite(tmp_path / "s", n=3, seed=0) == root
    assert [f.stat().st_mtime_ns for f in files] == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]


def test_tampered_or_different_suite_is_regenerated(tmp_path: Path) -> None:
    root = generate_suite(tmp_path / "s", n=3, seed=0)
    original = (root / "manifest.jsonl").read_bytes()
    (root / "manifest.jsonl").write_text("{}\n")
    generate_suite(root, n=3, seed=0)
    assert (root / "manifest.jsonl").read_bytes() == original
    (root / "clips" / "synth-00001.mp4").unlink()
    generate_suite(root, n=3, seed=0)
    assert (root / "clips" / "synth-00001.mp4").is_file()
    generate_suite(root, n=4, seed=0)
    assert json.loads((root / "suite.json").read_text())["n"] == 4
    assert len(_manifest(root)) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]


def test_refuses_to_replace_a_foreign_directory(tmp_path: Path) -> None:
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        generate_suite(foreign, n=2, seed=0)
    assert (foreign / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_interrupted_generation_leaves_the_previous_suite_untouched(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import mepbench.synth.suite as suite_module

    root = generate_suite(tmp_path / "s", n=2, seed=0)
    manifest = (root / "manifest.jsonl").read_bytes()
    calls = []

    def failing_write(*args: object) -> None:
        calls.append(args)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_write(*args)

    real_write = suite_module.write_mp4
    monkeypatch.setattr(suite_module, "write_mp4", failing_write)
    with pytest.raises(KeyboardInterrupt):
        generate_suite(root, n=3, seed=0)
    assert (root / "manifest.jsonl").read_bytes() == manifest
    assert json.loads((root / "suite.json").read_text())["n"] == 2
    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        generate_suite(tmp_path / "fresh", n=3, seed=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]
