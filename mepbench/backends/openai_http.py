"""POSTs to an OpenAI-compatible server with retries: exponential backoff with jitter on 429, 5xx, timeouts
and connection errors, bounded per request (`max_retries`) and across the run (a retry budget that
successes refill), so a flaky server is ridden out while a dead one fails fast instead of stalling a run.
"""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass
from typing import Any

MAX_BODY_IN_ERROR = 300


@dataclass(frozen=True)
class RetryPolicy:
    """Per-attempt timeout and the backoff schedule: `backoff_s * 2**n` (n = retries so far) with ±50 % jitter,
    capped at `backoff_max_s`; a server's Retry-After is honoured up to the cap."""

    max_retries: int = 4
    backoff_s: float = 1.0
    backoff_max_s: float = 30.0
    timeout_s: float = 120.0

    def delay(self, retries_so_far: int, retry_after: float | None = None) -> float:
        """Seconds to wait before the next attempt."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.backoff_max_s)
        base = min(self.backoff_s * 2 ** retries_so_far, self.backoff_max_s)
        return base * random.uniform(0.5, 1.5)


class RetryBudget:
    """Retries shared by all requests of a backend: each retry spends one token, each success returns
    `refill` tokens (up to `capacity`); when empty, failures are reported without retrying."""

    def __init__(self, capacity: float = 50.0, refill: float = 0.5):
        self.capacity, self.refill, self.tokens = float(capacity), float(refill), float(capacity)
        self.spent = 0

    def take(self) -> bool:
        """Spend one retry if any is left."""
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        self.spent += 1
        return True

    def succeeded(self) -> None:
        """Credit a successful request."""
        self.tokens = min(self.capacity, self.tokens + self.refill)


class RequestFailed(Exception):
    """A request that failed for good; `attempts` counts the HTTP attempts made."""

    def __init__(self, message: str, attempts: int):
        super().__init__(message)
        self.attempts = attempts


def _snippet(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_BODY_IN_ERROR else text[:MAX_BODY_IN_ERROR] + "..."


def _retry_after(headers: Any) -> float | None:
    try:
        return float(headers.get("retry-after"))
    except (TypeError, ValueError):
        return None


async def post_json(client: Any, url: str, body: dict[str, Any], headers: dict[str, str], policy: RetryPolicy,
                    budget: RetryBudget) -> tuple[dict[str, Any], int]:
    """The parsed JSON answer and the number of attempts; raises `RequestFailed` when retries are exhausted,
    the budget is spent, or the failure is not transient (4xx other than 408/429, malformed JSON)."""
    import httpx

    attempts = 0
    while True:
        attempts += 1
        retry_after = None
        try:
            response = await client.post(url, json=body, headers=headers, timeout=policy.timeout_s)
        except httpx.TimeoutException:
            error = f"timeout after {policy.timeout_s:g} s"
        except httpx.TransportError as exc:
            error = f"connection error: {type(exc).__name__}: {exc}"
        else:
            status = response.status_code
            if status < 400:
                try:
                    data = response.json()
                except (json.JSONDecodeError, UnicodeDecodeError):
                    raise RequestFailed(f"malformed JSON from server (HTTP {status}): {_snippet(response.text)}",
                                        attempts) from None
                if not isinstance(data, dict):
                    raise RequestFailed(f"malformed response (HTTP {status}): expected a JSON object", attempts)
                budget.succeeded()
                return data, attempts
            error = f"HTTP {status}: {_snippet(response.text)}"
            if status not in (408, 429) and status < 500:
                raise RequestFailed(error, attempts)
            retry_after = _retry_after(response.headers)
        if attempts > policy.max_retries:
            raise RequestFailed(f"{error} (gave up after {attempts} attempts)", attempts)
        if not budget.take():
            raise RequestFailed(f"{error} (retry budget spent after {attempts} attempt(s))", attempts)
        await asyncio.sleep(policy.delay(attempts - 1, retry_after))
