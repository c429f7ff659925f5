"""The evaluation runner: tasks × samples × variants → deduplicated, cached, batched requests → scores.

Responses are written to the cache batch by batch, so a run killed at any point resumes by asking
the backend only for what is missing. Per-sample failures are recorded and counted; the run goes on.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from mepbench.aggregation import task_results
from mepbench.backends import Backend, create_backend
from mepbench.cache import ResponseCache, request_key
from mepbench.config import EvalConfig
from mepbench.judges import JudgeLedger, build_judges, judge_scope
from mepbench.masking import MaskMode, Variant, applied_modes
from mepbench.media import MediaError
from mepbench.models import resolve_alias
from mepbench.scoring.mer_metrics import select_checkpoint
from mepbench.tasks import Task, TaskContext, TaskRegistry
from mepbench.tasks.base import Cell, item_kind
from mepbench.tasks.mer_replay import AffectGPTResults, is_affectgpt_results
from mepbench.tasks.options import options_dict
from mepbench.types import Modality, Request, Response, Sample, TextPart

MEDIA_COST = {"video": 8.0, "audio": 2.0, "image": 1.0}
BACKEND_EXCEPTION = "backend error: "  # prefix of the error recorded when `generate` raised


class RunFailed(RuntimeError):
    """Raised under --fail-fast at the first per-sample failure."""


@dataclass
class WorkItem:
    """One (task, sample, variant, item) cell of the run."""

    task: str
    sample_id: str
    variant: str
    sample: Sample | None
    item: str = ""
    target: dict[str, Any] = field(default_factory=dict)
    request: Request | None = None
    key: str | None = None
    response: Response | None = None
    cached: bool = False
    error: str | None = None
    reason: str | None = None  # the failure class: one of ERROR_REASONS


ERROR_REASONS = {"unsupported_input": "the backend cannot take a modality of the request",
                 "media_error": "a media file is missing or cannot be read or decoded",
                 "invalid_sample": "the data loader rejected the sample",
                 "backend_error": "the backend answered the request with an error",
                 "backend_exception": "the backend raised while answering the batch"}


@dataclass
class RunOutput:
    """What a run produced: per-cell items, per-task aggregates, groups and run statistics."""

    items: list[WorkItem]
    rows: list[dict[str, Any]]
    tasks: dict[str, dict[str, Any]]
    groups: dict[str, dict[str, Any]]
    stats: dict[str, Any]
    task_objects: dict[str, Task]
    backend: Backend


def _media_field(request: Request, path: str) -> str:
    return next((p.type for p in request.media_parts() if p.path == path), "media")


def _check_capabilities(request: Request, backend: Backend) -> str | None:
    missing = {Modality(p.type) for p in request.media_parts() if p.type != "image"} - backend.capabilities.modalities
    if missing:
        return f"backend {backend.name} cannot take {sorted(m.value for m in missing)} input"
    return None


def _prepare(task: Task, sample: Sample, cell: Cell, backend: Backend, model_fp: str) -> WorkItem:
    item = WorkItem(task.name, sample.id, cell.variant, sample, cell.item, cell.target, cell.request)
    item.error = _check_capabilities(cell.request, backend)
    item.reason = "unsupported_input" if item.error else None
    if item.error is None:
        try:
            item.key = request_key(cell.request, model_fp, backend.capabilities.keyed_by_sample)
        except MediaError as exc:
            item.error = f"{exc} (sample {sample.id!r}, field {_media_field(cell.request, exc.path)!r})"
            item.reason = "media_error"
    return item


def task_mask_mode(task: Task, config: EvalConfig, backend: Backend) -> MaskMode:
    """The mask mode for `task`: the user's choice, else the task's own; a task default of
    `zero-features` falls back to `blank` on backends that cannot zero features (a user's explicit
    choice is an error there instead)."""
    if config.mask_mode is not None:
        if config.mask_mode is MaskMode.ZERO_FEATURES and not backend.capabilities.feature_masking:
            raise ValueError(f"backend {backend.name} cannot zero processor features; use --mask-mode drop or blank")
        return config.mask_mode
    if task.mask_mode is MaskMode.ZERO_FEATURES and not backend.capabilities.feature_masking:
        return MaskMode.BLANK
    return task.mask_mode


def _cost(request: Request) -> float:
    text = sum(len(p.text) for m in request.messages for p in m.content if isinstance(p, TextPart))
    return sum(MEDIA_COST.get(p.type, 1.0) for p in request.media_parts()) * 100 + text / 4


def make_context(config: EvalConfig, backend: Backend) -> TaskContext:
    """The task context of a run: data and cache folders, the judges by role (metered by a ledger holding
    the judge token budget), and the scoring overrides."""
    cache_dir = config.resolved_cache_dir()
    ledger = JudgeLedger(config.max_judge_tokens)
    judges = build_judges(config.judges, cache_dir, config.judge_args, config.batch_size, ledger)
    return TaskContext(Path(config.data_root) if config.data_root else None, cache_dir, judges, config.embedder,
                       config.cue_extractor, config.pickle_allowed(), media_required=not backend.capabilities.keyed_by_sample,
                       judge_ledger=ledger)


def expand(config: EvalConfig, registry: TaskRegistry, backend: Backend, context: TaskContext | None = None,
           options: dict[str, Any] | None = None) -> tuple[list[WorkItem], dict[str, Task], dict[str, MaskMode]]:
    """Load every task (with its options: `options`, else those `config.task_args` give) and build its work items. A
    data problem found while preparing any variant of a sample (missing file, unsupported modality) fails all its
    variants, so every variant is scored on the same samples; loader failures become failed items for each
    variant."""
    context = context or make_context(config, backend)
    options = options if options is not None else registry.task_options(config.tasks, config.task_args)
    wanted = [Variant.parse(v) for v in config.variants] if config.variants else None
    items: list[WorkItem] = []
    tasks: dict[str, Task] = {}
    modes: dict[str, MaskMode] = {}
    model_fp = backend.fingerprint()
    for name in registry.resolve(config.tasks):
        task = tasks[name] = registry.create(name, context, options[name])
        mode = modes[name] = task_mask_mode(task, config, backend)
        variants = [v for v in task.variants if wanted is None or v in wanted]
        if not variants:
            raise ValueError(f"task {name!r} has none of the requested variants {config.variants}")
        loaded = task.load(config.limit)
        for sample in loaded.samples:
            cells = [_prepare(task, sample, c, backend, model_fp) for c in task.expand(sample, variants, mode)]
            bad = next((c for c in cells if c.error), None)
            for cell in cells:
                cell.error, cell.reason = (bad.error, bad.reason) if bad else (None, None)
            items.extend(cells)
        for j, err in enumerate(loaded.errors):
            items.extend(WorkItem(name, err.sample_id or f"<invalid row {j}>", v.name, None, error=str(err),
                                  reason="invalid_sample") for v in variants)
    return items, tasks, modes


def _generate(pending: dict[str, Request], backend: Backend, cache: ResponseCache | None, config: EvalConfig,
              on_batch: Callable[[int], None]) -> dict[str, Response]:
    # longest first, in buckets of similar cost so that batches stay even, and within a bucket by sample, so that a
    # clip's questions arrive together and its decoded media are still in the cache (mepbench.media.DECODED)
    order = sorted(pending, key=lambda k: (-(_cost(pending[k]) // 16), pending[k].sample_id, -_cost(pending[k])))
    size = config.batch_size if backend.capabilities.batching else 1
    done: dict[str, Response] = {}
    for start in range(0, len(order), size):
        keys = order[start:start + size]
        try:
            responses = backend.generate([pending[k] for k in keys])
        except Exception as exc:  # a backend bug must not lose the batches already answered
            if config.fail_fast:
                raise
            responses = [Response(error=f"{BACKEND_EXCEPTION}{type(exc).__name__}: {exc}") for _ in keys]
        batch = list(zip(keys, responses))
        if config.fail_fast and (bad := next((r for r in responses if not r.ok), None)):
            raise RunFailed(bad.error)
        if cache is not None:
            cache.put_many(batch, backend.fingerprint())
        done.update(batch)
        on_batch(len(keys))
    return done


def make_backend(config: EvalConfig) -> Backend:
    """The backend `config` names; `replay` of an AffectGPT results folder replays each of its checkpoints."""
    if config.backend == "replay" and is_affectgpt_results(config.model):
        return AffectGPTResults(config.model, allow_pickle=config.pickle_allowed())
    return create_backend(config.backend, resolve_alias(config.model, config.resolved_cache_dir()),
                          batch_size=config.batch_size, **config.model_args)


def answer(items: list[WorkItem], backend: Backend, config: EvalConfig,
           progress: Callable[[int, int], Callable[[int], None]] | None = None) -> dict[str, Any]:
    """Give every prepared item its response: identical requests are asked once, the cache answers what it holds,
    the backend the rest in batches (cached as they return); an error response fails the item with its class.
    Returns the request counts for the run statistics."""
    use_cache = config.use_cache and backend.capabilities.cacheable
    cache = ResponseCache(config.resolved_cache_dir() / "responses") if use_cache else None
    unique = {i.key: i.request for i in items if i.error is None and i.key is not None and i.request is not None}
    hits = cache.get_many(list(unique)) if cache else {}
    pending = {k: r for k, r in unique.items() if k not in hits}
    callback = progress(len(unique), len(hits)) if progress else (lambda n: None)
    t0 = time.time()
    try:
        fresh = _generate(pending, backend, cache, config, callback)
    finally:
        if cache:
            cache.close()
    for item in items:
        if item.error is None and item.key is not None:
            item.cached = item.key in hits
            item.response = hits.get(item.key) or fresh[item.key]
            if not item.response.ok:
                item.error = item.response.error
                exception = item.error.startswith(BACKEND_EXCEPTION)
                item.reason = "backend_exception" if exception else "backend_error"
    return {"requests": len(items), "unique_requests": len(unique), "cache_hits": len(hits),
            "generated": len(pending), "generation_seconds": time.time() - t0}


def score_task(task: Task, items: list[WorkItem], mode: MaskMode, config: EvalConfig,
               context: TaskContext) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One task's rows (scored by the task) and its results block (the one aggregation loop, plus identity)."""
    rows = [base_row(i, mode) for i in items]
    with judge_scope(task.name):
        task.score_rows(rows)
    agg = task_results(task, rows, config.bootstrap, config.seed)
    agg.update(primary_metric=task.primary_metric, fingerprint=task.fingerprint(), mask_mode=mode.value,
               options=options_dict(task.options), n_samples=len({r["sample_id"] for r in rows}),
               n_failed=sum(1 for r in rows if r["error"]))
    if context.judge_ledger is not None and (usage := context.judge_ledger.report(task=task.name)["roles"]):
        agg["judge_usage"] = usage
    return rows, agg


def _best_checkpoint(task: Task, items: list[WorkItem], backend: Any, mode: MaskMode, config: EvalConfig,
                     context: TaskContext, progress: Callable[[int, int], Callable[[int], None]] | None
                     ) -> tuple[Task, list[WorkItem], list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """Answer and score the task's items once per checkpoint of `backend`; keep the one its `checkpoint_select`
    option picks, with every checkpoint's primary metric recorded beside it."""
    scored = {}
    for name, checkpoint in backend.checkpoints(task).items():
        copies = [replace(i) for i in items]
        counts = answer(copies, checkpoint.backend, config, progress)
        again = type(task)(replace(context, openset=checkpoint.openset), task.options)
        rows, agg = score_task(again, copies, mode, config, context)
        scored[name] = (again, copies, rows, agg, counts)
    primary = {n: s[3]["variants"]["full"]["metrics"][task.primary_metric]["value"] for n, s in scored.items()}
    rule = task.options.checkpoint_select
    winner = select_checkpoint(primary, rule)
    scored[winner][3].update(checkpoints=primary, selected_checkpoint=winner, checkpoint_select=rule)
    return scored[winner]


def run_eval(config: EvalConfig, backend: Backend | None = None,
             progress: Callable[[int, int], Callable[[int], None]] | None = None,
             context: TaskContext | None = None) -> RunOutput:
    """Run the evaluation described by `config`; `progress(total, cached)` returns a per-batch callback;
    `context` replaces the task context built from `config`. Task options are checked before the backend loads."""
    started = time.time()
    registry = TaskRegistry(tuple(config.include_paths))
    options = registry.task_options(config.tasks, config.task_args)
    backend = backend or make_backend(config)
    checkpointed = hasattr(backend, "checkpoints")
    if checkpointed:  # recorded checkpoints answer the full input only
        config = replace(config, variants=["full"])
    context = context or make_context(config, backend)
    items, tasks, modes = expand(config, registry, backend, context, options)
    if config.fail_fast and (bad := next((i for i in items if i.error), None)):
        raise RunFailed(bad.error)
    counts: Counter[str] = Counter()
    rows: list[dict[str, Any]] = []
    aggregates = {}
    if not checkpointed:
        counts.update(answer(items, backend, config, progress))
    answered = []
    for name, task in tasks.items():
        task_items = [i for i in items if i.task == name]
        if checkpointed:
            task, task_items, task_rows, agg, task_counts = _best_checkpoint(task, task_items, backend, modes[name],
                                                                             config, context, progress)
            tasks[name] = task
            counts.update(task_counts)
        else:
            task_rows, agg = score_task(task, task_items, modes[name], config, context)
        answered.extend(task_items)
        rows.extend(task_rows)
        aggregates[name] = agg
    failed = [i for i in answered if i.error]
    stats = {**{k: counts[k] for k in ("requests", "unique_requests", "cache_hits", "generated")},
             "failed": len(failed),
             "failed_by_reason": dict(sorted(Counter(i.reason or "other" for i in failed).items())),
             "generation_seconds": counts["generation_seconds"], "wall_seconds": time.time() - started,
             **judge_totals(context.judge_ledger)}
    return RunOutput(answered, rows, aggregates, group_scores(registry, config.tasks, aggregates, tasks), stats,
                     tasks, backend)


def judge_totals(ledger: JudgeLedger | None) -> dict[str, int]:
    """Run totals of judge calls and fresh tokens for the stats block (per role and task: each aggregate)."""
    if ledger is None or not ledger.usage:
        return {}
    fields = ("calls", "cached", "fresh", "prompt_tokens", "completion_tokens", "refused")
    return {f"judge_{f}": sum(getattr(u, f) for u in ledger.usage.values()) for f in fields}


def base_row(item: WorkItem, mode: MaskMode) -> dict[str, Any]:
    """One samples.parquet row before scoring: identity, target, request, response and error."""
    modes = applied_modes(Variant.parse(item.variant), mode)
    return {"task": item.task, "sample_id": item.sample_id, "variant": item.variant, "item": item.item,
            "kind": item_kind(item.item), "error_reason": item.reason,
            "mask_mode": ",".join(f"{m}:{how}" for m, how in modes.items()) or None, "request_key": item.key,
            "label": item.sample.label if item.sample else None, "target": item.target, "error": item.error,
            "cached": item.cached, "sample": item.sample, "request": item.request, "response": item.response}


def group_scores(registry: TaskRegistry, requested: list[str], aggregates: dict[str, dict[str, Any]],
                 tasks: dict[str, Task]) -> dict[str, dict[str, Any]]:
    """For each requested group: the mean of its tasks' primary metrics on the full variant, updated by the
    first member's `group_metrics(aggregates)` where it has one (MME-Emotion pools samples instead)."""
    out: dict[str, dict[str, Any]] = {}
    for name in requested:
        if name not in registry.groups:
            continue
        members = registry.resolve([name])
        values = {m: aggregates[m]["variants"].get("full", {}).get("metrics", {})
                  .get(tasks[m].primary_metric, {}).get("value") for m in members}
        scored = [v for v in values.values() if v is not None]
        out[name] = {"tasks": values, "mean": sum(scored) / len(scored) if len(scored) == len(values) else None}
        hook = getattr(tasks[members[0]], "group_metrics", None) if members else None
        if hook is not None:
            out[name].update(hook({m: aggregates[m] for m in members}))
    return out
