"""Media decoding (PyAV for video frames and audio tracks, soundfile for wav) and content hashes.

Decoded outputs are what every model family consumes: uniformly sampled RGB frames at a fixed square
size, and 16 kHz mono float32 audio.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from functools import lru_cache
from math import gcd
from pathlib import Path
from typing import Any

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


class DecodedCache:
    """Recently decoded media by (path, mtime, size, decoding arguments), least recently used out first once the
    arrays exceed `max_bytes`: an MEP clip is asked ~14 questions, each of which would decode its media again."""

    def __init__(self, max_bytes: int):
        self.max_bytes, self.nbytes = max_bytes, 0
        self._items: OrderedDict[tuple[Any, ...], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: Path, args: tuple[Any, ...], decode: Callable[[Path], np.ndarray]) -> np.ndarray:
        """A copy of the decoded array (decoding on a miss; errors are not cached)."""
        st = path.stat()
        key = (str(path.resolve()), st.st_mtime_ns, st.st_size, *args)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key].copy()
        value = decode(path)
        with self._lock:
            if key not in self._items and value.nbytes <= self.max_bytes:
                self._items[key] = value
                self.nbytes += value.nbytes
                while self.nbytes > self.max_bytes:
                    self.nbytes -= self._items.popitem(last=False)[1].nbytes
        return value.copy()

    def resize(self, max_bytes: int) -> None:
        """Set the budget and drop everything (0: keep nothing, every request decodes its media)."""
        with self._lock:
            self.max_bytes, self.nbytes = max_bytes, 0
            self._items.clear()


DECODED = DecodedCache(int(os.environ.get("MEPBENCH_DECODED_CACHE_MB", "256")) << 20)


def decode_video(path: str | os.PathLike, num_frames: int = 8, size: int = 112) -> np.ndarray:
    """Decode `num_frames` uniformly sampled frames as uint8 RGB of shape (T, size, size, 3).

    Short clips repeat their last frame so every clip yields the same T. Kept in `DECODED` for the next request of
    the same clip.
    """
    return DECODED.get(_require(path), ("video", num_frames, size), lambda p: _decode_video(p, num_frames, size))


def _decode_video(p: Path, num_frames: int, size: int) -> np.ndarray:
    import av

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
    """Decode an audio file or a video's audio track to mono float32 at `sample_rate` (kept in `DECODED` too)."""
    return DECODED.get(_require(path), ("audio", sample_rate), lambda p: _decode_audio(p, sample_rate))


def _decode_audio(p: Path, sample_rate: int) -> np.ndarray:
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
