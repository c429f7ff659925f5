"""The OpenAI-compatible backend: any chat-completions server (`vllm serve`, hosted APIs).

Requests of a `generate` call run concurrently (at most `concurrency` in flight) over one HTTP
connection pool, with retries (see `openai_http`). The API key is read from an environment variable at
call time and only ever put in the Authorization header: it is not stored on the backend, not part of
`describe()` or the fingerprint, and any echo of it in a server's error text is masked.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from mepbench.backends.base import Capabilities
from mepbench.backends.openai_http import RequestFailed, RetryBudget, RetryPolicy, post_json
from mepbench.backends.openai_messages import MediaOptions, MessageBuilder, sampling_fields
from mepbench.backends.vllm_inputs import error_text
from mepbench.types import Modality, Request, Response

RECIPE_VERSION = 1  # bump when message building changes what servers are sent
DEFAULT_BASE_URL = "https://api.openai.com/v1"


def public_url(url: str) -> str:
    """The base URL without user:password, query or fragment (credentials are never written anywhere)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path.rstrip("/"), "", ""))


def _run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine to completion from sync code, also when the caller already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


class OpenAIBackend:
    """An OpenAI-compatible chat-completions server behind the `Backend` protocol.

    `batch_size` (passed by the runner) is accepted and ignored: `concurrency` bounds the requests in flight."""

    name = "openai"

    def __init__(self, model: str, *, base_url: str = DEFAULT_BASE_URL, api_key_env: str = "OPENAI_API_KEY",
                 concurrency: int = 8, timeout_s: float = 120.0, max_retries: int = 4, backoff_s: float = 1.0,
                 backoff_max_s: float = 30.0, retry_budget: float = 50.0, num_frames: int = 8, frame_size: int = 112,
                 image_format: str = "jpeg", audio: bool = True, send_seed: bool = True,
                 max_tokens_field: str = "max_tokens", extra_body: dict[str, Any] | None = None,
                 batch_size: int | None = None):
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.api_key_env = api_key_env
        self.concurrency = max(1, int(concurrency))
        self.policy = RetryPolicy(max_retries=max_retries, backoff_s=backoff_s, backoff_max_s=backoff_max_s,
                                  timeout_s=timeout_s)
        self.budget = RetryBudget(retry_budget)
        self.media = MediaOptions(num_frames=num_frames, frame_size=frame_size, image_format=image_format, audio=audio)
        self.builder = MessageBuilder(self.media)
        self.send_seed, self.max_tokens_field = send_seed, max_tokens_field
        self.extra_body = dict(extra_body or {})
        modalities = {Modality.TEXT, Modality.VIDEO} | ({Modality.AUDIO} if audio else set())
        self.capabilities = Capabilities(modalities=frozenset(modalities), batching=True, feature_masking=False,
                                         extra={"masking": "blank"})
        self.stats = {"requests": 0, "errors": 0, "attempts": 0}

    def _options(self) -> dict[str, Any]:
        """Options that change what the server is sent (transport settings like concurrency do not)."""
        return {**asdict(self.media), "send_seed": self.send_seed, "max_tokens_field": self.max_tokens_field,
                "extra_body": self.extra_body, "recipe": RECIPE_VERSION}

    def fingerprint(self) -> str:
        """sha256 of the server URL, the model name and the options that change requests (never the key)."""
        blob = json.dumps({"backend": self.name, "base_url": public_url(self.base_url), "model": self.model,
                           "options": self._options()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def describe(self) -> dict[str, object]:
        """Server, model, options and transport settings for results.json; names the key's variable only."""
        return {"backend": self.name, "model": self.model, "base_url": public_url(self.base_url),
                "api_key_env": self.api_key_env, "options": self._options(),
                "transport": {"concurrency": self.concurrency, **asdict(self.policy),
                              "retry_budget": self.budget.capacity},
                "masking": "no feature masking: masked variants send blank media (black frames, silence) or "
                           "drop the part", "fingerprint": self.fingerprint()}

    # -- generation ------------------------------------------------------------------------------

    def generate(self, requests: list[Request]) -> list[Response]:
        """Answer all requests concurrently; failures (after retries) are error Responses, in order."""
        responses = _run(self._generate(requests)) if requests else []
        self.stats["requests"] += len(responses)
        self.stats["errors"] += sum(not r.ok for r in responses)
        return responses

    def _headers(self) -> tuple[dict[str, str], str | None]:
        key = os.environ.get(self.api_key_env) or None
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers, key

    async def _generate(self, requests: list[Request]) -> list[Response]:
        import httpx

        headers, key = self._headers()
        gate = asyncio.Semaphore(self.concurrency)
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        async with httpx.AsyncClient(limits=limits, timeout=self.policy.timeout_s) as client:
            return list(await asyncio.gather(*(self._one(client, gate, headers, key, r) for r in requests)))

    def _body(self, request: Request) -> dict[str, Any]:
        return {"model": self.model, "messages": self.builder.messages(request),
                **sampling_fields(request.params, self.max_tokens_field, self.send_seed), **self.extra_body}

    async def _one(self, client: Any, gate: asyncio.Semaphore, headers: dict[str, str], key: str | None,
                   request: Request) -> Response:
        async with gate:
            start = time.perf_counter()
            try:
                body = await asyncio.to_thread(self._body, request)
            except Exception as exc:
                return Response(error=error_text(exc), latency_s=time.perf_counter() - start)
            try:
                data, attempts = await post_json(client, f"{self.base_url}/chat/completions", body, headers,
                                                 self.policy, self.budget)
            except RequestFailed as exc:
                self.stats["attempts"] += exc.attempts
                return Response(error=_mask(str(exc), key), latency_s=time.perf_counter() - start)
            self.stats["attempts"] += attempts
            return _to_response(data, time.perf_counter() - start, key)


def _mask(text: str, key: str | None) -> str:
    return text.replace(key, "***") if key else text


def _to_response(data: dict[str, Any], latency_s: float, key: str | None) -> Response:
    """A chat-completions JSON answer as a Response (missing content is a malformed-response error)."""
    try:
        text = data["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return Response(error=_mask(f"malformed response: no choices[0].message.content in "
                                    f"{json.dumps(data)[:300]}", key), latency_s=latency_s)
    if not isinstance(text, str):
        return Response(error="malformed response: message content is not text", latency_s=latency_s)
    usage = data.get("usage") or {}
    return Response(text=text, prompt_tokens=int(usage.get("prompt_tokens") or 0),
                    completion_tokens=int(usage.get("completion_tokens") or 0), latency_s=latency_s)
