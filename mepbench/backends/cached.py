"""A backend wrapper that answers from the response cache and stores what it generates (used for judges
and cue extractors, whose calls are as costly as the evaluated model's)."""

from __future__ import annotations

from mepbench.backends.base import Backend, BackendWrapper
from mepbench.cache import ResponseCache, request_key
from mepbench.types import Request, Response


class CachedBackend(BackendWrapper):
    """Same protocol as the wrapped backend; successful responses are cached under its fingerprint."""

    def __init__(self, backend: Backend, cache: ResponseCache):
        super().__init__(backend)
        self.cache = cache
        self.hits = 0

    def generate(self, requests: list[Request]) -> list[Response]:
        """Cached answers where present; the rest from the wrapped backend, then cached."""
        fp = self.fingerprint()
        keys = [request_key(r, fp, self.capabilities.keyed_by_sample) for r in requests]
        found = self.cache.get_many(list(dict.fromkeys(keys)))
        self.hits += sum(k in found for k in keys)
        todo = [i for i, k in enumerate(keys) if k not in found]
        fresh = self.backend.generate([requests[i] for i in todo]) if todo else []
        self.cache.put_many([(keys[i], r) for i, r in zip(todo, fresh)], fp)
        answers = dict(found)
        answers.update((keys[i], r) for i, r in zip(todo, fresh))
        return [answers[k] for k in keys]
