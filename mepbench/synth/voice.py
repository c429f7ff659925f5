"""Voice-like audio whose acoustic cues (pitch, loudness, rate, trembling, sigh) are synthesised with numpy.

Each syllable is a harmonic source shaped by a vowel's formants under a smooth envelope; pitch sets the
fundamental, loudness the peak level, rate the syllables per second. Trembling adds vibrato and tremolo
with jitter; a sigh is band-passed noise with a falling envelope after the speech.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from scipy.signal import butter, sosfilt

SAMPLE_RATE = 16_000
DURATION_S = 2.0

_F0 = {"high pitch": 240.0, "low pitch": 105.0}
_F0_MID = 160.0
_PEAK = {"loud voice": 0.8, "soft voice": 0.1}
_PEAK_MID = 0.35
_RATE = {"fast speech": 5.5, "slow speech": 2.2}
_RATE_MID = 3.5
_VOWELS = ((730.0, 1090.0), (270.0, 2290.0), (300.0, 870.0), (530.0, 1840.0), (570.0, 840.0))
_SIGH_START_S = 1.3
_NOISE_FLOOR = 3e-4


def _pick(cues: set[str], table: dict[str, float], default: float) -> float:
    return next((v for k, v in table.items() if k in cues), default)


def _envelope(n: int, attack: float, release: float) -> np.ndarray:
    """Raised-cosine attack and release around a flat sustain, as fractions of `n` samples."""
    env = np.ones(n)
    a, r = max(1, int(n * attack)), max(1, int(n * release))
    env[:a] = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, a))
    env[-r:] = 0.5 + 0.5 * np.cos(np.linspace(0, np.pi, r))
    return env


def _smooth_noise(rng: np.random.Generator, n: int, rate_hz: float) -> np.ndarray:
    """Zero-mean noise varying at about `rate_hz`, linearly interpolated to `n` samples."""
    knots = rng.standard_normal(int(n / SAMPLE_RATE * rate_hz) + 2)
    return np.interp(np.arange(n), np.linspace(0, n, len(knots)), knots)


def _syllable(rng: np.random.Generator, f0: np.ndarray, vowel: tuple[float, float]) -> np.ndarray:
    """Harmonics of the f0 track, each weighted by spectral tilt and the vowel's two formants."""
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE + rng.uniform(0, 2 * np.pi)
    k = np.arange(1, int(3800 / f0.max()) + 1)
    freqs = k * f0.mean()
    f1, f2 = vowel
    gains = (1 + 6 * np.exp(-(((freqs - f1) / 110) ** 2)) + 4 * np.exp(-(((freqs - f2) / 160) ** 2))) / k
    return gains @ np.sin(np.outer(k, phase))


def _speech(rng: np.random.Generator, cues: set[str], end_s: float) -> np.ndarray:
    """Syllables laid out at the cue's rate from 0.1 s to `end_s`, with declining, accented pitch."""
    n_total = int(DURATION_S * SAMPLE_RATE)
    out = np.zeros(n_total)
    f0_base = _pick(cues, _F0, _F0_MID) * rng.uniform(0.93, 1.07)
    rate = _pick(cues, _RATE, _RATE_MID) * rng.uniform(0.92, 1.08)
    trembling = "trembling voice" in cues
    vib_hz, trem_hz = rng.uniform(6.0, 8.0), rng.uniform(6.0, 8.0)
    t = rng.uniform(0.06, 0.14)
    while True:
        length = 0.62 / rate * rng.uniform(0.85, 1.15)
        if t + length > end_s:
            break
        start, n = int(t * SAMPLE_RATE), int(length * SAMPLE_RATE)
        times = t + np.arange(n) / SAMPLE_RATE
        accent = 1 + rng.uniform(-0.05, 0.08)
        glide = np.linspace(0.03, -0.03, n) * rng.choice((-1.0, 1.0))
        f0 = f0_base * accent * (1 - 0.04 * times) * (1 + glide)
        env = _envelope(n, 0.15, 0.3)
        if trembling:
            f0 = f0 * (1 + 0.04 * np.sin(2 * np.pi * vib_hz * times) + 0.015 * _smooth_noise(rng, n, 25))
            env = env * (1 - 0.35 * (0.5 + 0.5 * np.sin(2 * np.pi * trem_hz * times)))
        voiced = _syllable(rng, f0, _VOWELS[int(rng.integers(len(_VOWELS)))])
        out[start:start + n] += voiced * env
        if rng.random() < 0.5:
            burst = int(0.02 * SAMPLE_RATE)
            onset = max(0, start - burst)
            out[onset:onset + burst] += 0.15 * rng.standard_normal(burst) * _envelope(burst, 0.3, 0.6)
        t += length + 0.38 / rate * rng.uniform(0.7, 1.3)
    return out


def _sigh(rng: np.random.Generator, start_s: float) -> np.ndarray:
    """A breathy exhalation: band-passed noise with a quick onset and an exponentially falling envelope."""
    n_total = int(DURATION_S * SAMPLE_RATE)
    start = int(start_s * SAMPLE_RATE)
    n = n_total - start
    sos = butter(4, (250, 2200), btype="bandpass", fs=SAMPLE_RATE, output="sos")
    noise = sosfilt(sos, rng.standard_normal(n))
    times = np.arange(n) / SAMPLE_RATE
    env = np.minimum(times / 0.08, 1.0) * np.exp(-times / 0.22)
    out = np.zeros(n_total)
    out[start:] = noise * env / np.abs(noise * env).max()
    return out


def render_voice(cues: Iterable[str], rng: np.random.Generator) -> np.ndarray:
    """DURATION_S of 16 kHz mono float32 audio in [-1, 1] carrying `cues` (none: a neutral voice)."""
    cue_set = set(cues)
    has_sigh = "sigh" in cue_set
    voice = _speech(rng, cue_set, _SIGH_START_S - 0.05 if has_sigh else DURATION_S - 0.08)
    voice /= np.abs(voice).max()
    if has_sigh:
        voice += 0.6 * _sigh(rng, _SIGH_START_S)
    peak = _pick(cue_set, _PEAK, _PEAK_MID) * rng.uniform(0.9, 1.1)
    wave = voice * peak + _NOISE_FLOOR * rng.standard_normal(len(voice))
    return np.clip(wave, -1.0, 1.0).astype(np.float32)
