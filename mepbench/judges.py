"""Judge roles: models that extract cues, open-set labels or steps, or score reasoning, named per role
(`--judge ROLE=MODEL[@backend]`, e.g. `--judge extract=Qwen/Qwen2.5-7B-Instruct@vllm`) and built through
the same backend registry as evaluated models; every judge answer is cached like any response."""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

from mepbench.backends import Backend, create_backend
from mepbench.backends.base import BackendWrapper
from mepbench.backends.cached import CachedBackend
from mepbench.cache import ResponseCache
from mepbench.models import resolve_alias
from mepbench.types import Request, Response

DEFAULT_ROLE = "default"
BUDGET_EXHAUSTED = "judge token budget exhausted"
_ROLE: ContextVar[str] = ContextVar("mepbench_judge_role", default="")
_TASK: ContextVar[str] = ContextVar("mepbench_judge_task", default="")


def parse_judges(values: list[str]) -> dict[str, str]:
    """`ROLE=MODEL[@backend]` items (a bare `MODEL[@backend]` is the default role) → role → spec."""
    out: dict[str, str] = {}
    for value in values:
        role, sep, spec = value.partition("=")
        role, spec = (role.strip(), spec.strip()) if sep else (DEFAULT_ROLE, value.strip())
        if not role or not spec:
            raise ValueError(f"--judge expects ROLE=MODEL[@backend] or MODEL[@backend], got {value!r}")
        out[role] = spec
    return out


def split_spec(spec: str, default_backend: str = "hf") -> tuple[str, str]:
    """`MODEL[@backend]` → (model, backend)."""
    model, sep, backend = spec.rpartition("@")
    return (model, backend) if sep and model and "/" not in backend else (spec, default_backend)


def build_judges(specs: dict[str, str], cache_dir: Path, options: dict[str, Any] | None = None,
                 batch_size: int = 8, ledger: JudgeLedger | None = None) -> dict[str, Backend]:
    """One cached backend per distinct spec, shared by the roles that name it; with a `ledger`, fresh
    calls are metered and held to its token budget below the cache, and every call is counted per role."""
    built: dict[str, Backend] = {}
    cache = ResponseCache(Path(cache_dir) / "responses")
    for spec in dict.fromkeys(specs.values()):
        model, backend = split_spec(spec)
        raw: Backend = create_backend(backend, resolve_alias(model, cache_dir), batch_size=batch_size,
                                      **(options or {}))
        built[spec] = CachedBackend(MeteredBackend(raw, ledger, batch_size) if ledger else raw, cache)
    if ledger is None:
        return {role: built[spec] for role, spec in specs.items()}
    return {role: RoleJudge(built[spec], role, ledger) for role, spec in specs.items()}


@contextmanager
def judge_scope(task: str) -> Iterator[None]:
    """Charge the judge calls made inside the block to `task` in the ledger (cost per role, per task)."""
    token = _TASK.set(task)
    try:
        yield
    finally:
        _TASK.reset(token)


@dataclass
class JudgeUsage:
    """Judge calls of one (role, task): all calls, those answered from the cache, fresh tokens in/out,
    failed fresh calls and calls refused by the token budget."""

    calls: int = 0
    cached: int = 0
    fresh: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    errors: int = 0
    refused: int = 0


class JudgeLedger:
    """Token accounting of a run's judges and the `--max-judge-tokens` budget (prompt + completion tokens of
    fresh calls, as the backend reports them; answers from the cache cost nothing)."""

    def __init__(self, max_tokens: int | None = None):
        self.max_tokens = max_tokens
        self.usage: dict[tuple[str, str], JudgeUsage] = {}

    def entry(self, role: str, task: str) -> JudgeUsage:
        """The usage record of (role, task), created on first use."""
        return self.usage.setdefault((role, task), JudgeUsage())

    @property
    def spent(self) -> int:
        """Fresh tokens in and out over all roles and tasks."""
        return sum(u.prompt_tokens + u.completion_tokens for u in self.usage.values())

    @property
    def exhausted(self) -> bool:
        """Whether the budget (if any) is used up."""
        return self.max_tokens is not None and self.spent >= self.max_tokens

    def report(self, task: str | None = None) -> dict[str, Any]:
        """Usage per role (for one task, or per task then role), the budget and the tokens spent."""
        if task is not None:
            roles = {role: asdict(u) for (role, t), u in sorted(self.usage.items()) if t == task}
            return {"roles": roles, "max_tokens": self.max_tokens, "spent": self.spent}
        tasks: dict[str, dict[str, Any]] = {}
        for (role, t), u in sorted(self.usage.items()):
            tasks.setdefault(t or "<none>", {})[role] = asdict(u)
        return {"tasks": tasks, "max_tokens": self.max_tokens, "spent": self.spent}


class MeteredBackend(BackendWrapper):
    """Below the cache: books tokens to the current role and task; under a budget, sends fresh requests in
    chunks while it lasts and refuses the rest with an error response (never an exception). A chunk in
    flight may overshoot the budget by its own tokens; without a budget the backend gets the whole batch."""

    def __init__(self, backend: Backend, ledger: JudgeLedger, chunk: int = 8):
        super().__init__(backend)
        self.ledger, self.chunk = ledger, max(1, chunk)

    def generate(self, requests: list[Request]) -> list[Response]:
        """Fresh answers chunk by chunk until the budget is spent; refusals after that."""
        usage = self.ledger.entry(_ROLE.get(), _TASK.get())
        out: list[Response] = []
        size = self.chunk if self.ledger.max_tokens is not None else max(1, len(requests))
        for start in range(0, len(requests), size):
            chunk = requests[start:start + size]
            if self.ledger.exhausted:
                usage.refused += len(chunk)
                out.extend(Response(error=f"{BUDGET_EXHAUSTED} ({self.ledger.spent} of {self.ledger.max_tokens} "
                                          "tokens; --max-judge-tokens)") for _ in chunk)
                continue
            answers = self.backend.generate(chunk)
            usage.fresh += len(chunk)
            usage.errors += sum(not r.ok for r in answers)
            usage.prompt_tokens += sum(r.prompt_tokens for r in answers)
            usage.completion_tokens += sum(r.completion_tokens for r in answers)
            out.extend(answers)
        return out


class RoleJudge(BackendWrapper):
    """Above the cache: names the role for the metering below and counts every call and cache hit."""

    def __init__(self, backend: Backend, role: str, ledger: JudgeLedger):
        super().__init__(backend)
        self.role, self.ledger = role, ledger

    def generate(self, requests: list[Request]) -> list[Response]:
        """Answer through the wrapped backend with this role in scope."""
        token = _ROLE.set(self.role)
        hits = getattr(self.backend, "hits", 0)
        try:
            answers = self.backend.generate(requests)
        finally:
            _ROLE.reset(token)
        usage = self.ledger.entry(self.role, _TASK.get())
        usage.calls += len(requests)
        usage.cached += getattr(self.backend, "hits", 0) - hits
        return answers


def metered(backend: Backend, role: str, ledger: JudgeLedger) -> Backend:
    """`backend` as role `role` under `ledger`, without a cache (for judges built outside `build_judges`)."""
    return RoleJudge(MeteredBackend(backend, ledger), role, ledger)
