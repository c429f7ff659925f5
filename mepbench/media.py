"""Media decoding (PyAV for video frames and audio tracks, soundfile for wav) and content hashes.

Decoded outputs are what every model family consumes: uniformly sampled RGB frames at a fixed square
size, and 16 kHz mono float32 audio.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from math import gcd
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000
SOUNDFILE_SUFFIXES = {".wav", ".flac", ".ogg"}


class MediaError(Exception):
    """A media file is missing or cannot be decoded; the message names the file."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        super().__init__(f"{reason}: {self.path}")


def _require(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.is_file():
        raise MediaError(p, "missing media file")
    return p


@lru_cache(maxsize=65536)
def _hash_cached(path: str, mtime_ns: int, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_hash(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, memoised on (path, mtime, size) so a run hashes each file once."""
    p = _require(path)
    st = p.stat()
    return _hash_cached(str(p.resolve()), st.st_mtime_ns, st.st_size)


def uniform_indices(total: int, num: int) -> list[int]:
    """`num` frame indices spread evenly over `total` frames (centre of each segment)."""
    if total <= 0:
        return []
    return [min(total - 1, int((i + 0.5) * total / num)) for i in range(num)]


def decode_video(path: str | os.PathLike, num_frames: int = 8, size: int = 112) -> np.ndarray:
    """Decode `num_frames` uniformly sampled frames as uint8 RGB of shape (T, size, size, 3).

    Short clips repeat their last frame so every clip yields the same T.
    """
    import av

    p = _require(path)
    try:
        with av.open(str(p)) as container:
            if not container.streams.video:
                raise MediaError(p, "no video stream")
            stream = container.streams.video[0]
            frames = [f.to_ndarray(format="rgb24", width=size, height=size)
                      for f in container.decode(stream)]
    except MediaError:
        raise
    except Exception as exc:  # PyAV raises many error types for damaged containers
        raise MediaError(p, f"cannot decode video ({type(exc).__name__}: {exc})") from exc
    if not frames:
        raise MediaError(p, "video has no decodable frames")
    idx = uniform_indices(len(frames), num_frames)
    return np.stack([frames[i] for i in idx])


def _resample(wave: np.ndarray, rate: int, target: int) -> np.ndarray:
    if rate == target:
        return wave.astype(np.float32)
    from scipy.signal import resample_poly

    g = gcd(rate, target)
    return resample_poly(wave, target // g, rate // g).astype(np.float32)


def decode_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode an audio file or a video's audio track to mono float32 at `sample_rate`."""
    p = _require(path)
    try:
        if p.suffix.lower() in SOUNDFILE_SUFFIXES:
            import soundfile as sf

            wave, rate = sf.read(str(p), dtype="float32", always_2d=True)
            return _resample(wave.mean(axis=1), rate, sample_rate)
        return _decode_audio_av(p, sample_rate)
    except MediaError:
        raise
    except Exception as exc:
        raise MediaError(p, f"cannot decode audio ({type(exc).__name__}: {exc})") from exc


def _decode_audio_av(p: Path, sample_rate: int) -> np.ndarray:
    import av

    with av.open(str(p)) as container:
        if not container.streams.audio:
            raise MediaError(p, "no audio stream")
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        chunks = []
        for frame in container.decode(container.streams.audio[0]):
            chunks.extend(r.to_ndarray().reshape(-1) for r in resampler.resample(frame))
        chunks.extend(r.to_ndarray().reshape(-1) for r in resampler.resample(None))
    if not chunks:
        raise MediaError(p, "audio track has no samples")
    return np.concatenate(chunks).astype(np.float32)


def audio_duration(path: str | os.PathLike) -> float:
    """Duration in seconds, read from the header where possible (used for silence of equal length)."""
    p = _require(path)
    if p.suffix.lower() in SOUNDFILE_SUFFIXES:
        import soundfile as sf

        try:
            info = sf.info(str(p))
        except Exception as exc:
            raise MediaError(p, f"cannot read audio header ({exc})") from exc
        return info.frames / info.samplerate
    return len(decode_audio(p)) / SAMPLE_RATE
