"""Response cache: SQLite in WAL mode keyed by a request fingerprint, plus an append-only JSONL audit log.

The key covers the model fingerprint, the rendered messages (with media content hashes instead of
paths), the generation parameters and the feature masks, so editing a prompt or swapping a checkpoint
never reuses a stale answer, and a killed run resumes from what was written.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path
from typing import Any

from mepbench.media import file_hash
from mepbench.types import GenerationParams, Request, Response, TextPart


def default_cache_dir() -> Path:
    """`$MEPBENCH_CACHE`, else `$XDG_CACHE_HOME/mepbench`, else `~/.cache/mepbench`."""
    if os.environ.get("MEPBENCH_CACHE"):
        return Path(os.environ["MEPBENCH_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mepbench"


@lru_cache(maxsize=256)
def _params_dict(params: GenerationParams) -> dict[str, Any]:
    return asdict(params)


def request_payload(request: Request) -> dict[str, Any]:
    """The content-addressed form of a request: text verbatim, media as (type, sha256, blank)."""
    messages = []
    for m in request.messages:
        parts = [{"type": "text", "text": p.text} if isinstance(p, TextPart)
                 else {"type": p.type, "sha256": file_hash(p.path), "blank": p.blank} for p in m.content]
        messages.append({"role": m.role, "content": parts})
    return {"messages": messages, "params": _params_dict(request.params),
            "zero_features": sorted(m.value for m in request.zero_features)}


def request_key(request: Request, model_fingerprint: str, keyed_by_sample: bool = False) -> str:
    """SHA-256 fingerprint of (model, content, params, masks[, sample id]). Raises MediaError for missing media."""
    payload = {"model": model_fingerprint, **request_payload(request)}
    if keyed_by_sample:
        payload["sample"] = [request.sample_id, request.variant]
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


class ResponseCache:
    """Persistent map from request key to successful Response; safe for concurrent readers (WAL)."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / "responses.sqlite"
        self.audit_path = self.directory / "responses.jsonl"
        self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, model TEXT NOT NULL,"
                         " response TEXT NOT NULL, created REAL NOT NULL)")

    def get_many(self, keys: list[str]) -> dict[str, Response]:
        """Cached responses for those of `keys` that are present."""
        found: dict[str, Response] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            rows = self._db.execute(f"SELECT key, response FROM responses WHERE key IN ({','.join('?' * len(chunk))})",
                                    chunk).fetchall()
            found.update((k, Response(**json.loads(r))) for k, r in rows)
        return found

    def put_many(self, items: list[tuple[str, Response]], model: str) -> None:
        """Store successful responses in one transaction and append them to the audit log."""
        rows = [(k, model, json.dumps(r.to_dict()), time.time()) for k, r in items if r.ok]
        if not rows:
            return
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?)", rows)
        with open(self.audit_path, "a", encoding="utf-8") as log:
            for key, model_fp, response, created in rows:
                log.write(json.dumps({"key": key, "model": model_fp, "created": created,
                                      "response": json.loads(response)}) + "\n")

    def info(self) -> dict[str, Any]:
        """Entry count, distinct models and size on disk."""
        n, models = self._db.execute("SELECT COUNT(*), COUNT(DISTINCT model) FROM responses").fetchone()
        size = sum(p.stat().st_size for p in self.directory.glob("responses.*") if p.is_file())
        return {"path": str(self.path), "entries": n, "models": models, "bytes": size}

    def clear(self, model: str | None = None) -> int:
        """Delete all entries, or those of one model fingerprint; returns how many were removed."""
        with self._db:
            cur = (self._db.execute("DELETE FROM responses WHERE model = ?", (model,)) if model
                   else self._db.execute("DELETE FROM responses"))
        if model is None and self.audit_path.exists():
            self.audit_path.unlink()
        return cur.rowcount

    def close(self) -> None:
        """Close the database connection."""
        self._db.close()
