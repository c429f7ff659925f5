"""Leaderboards: one board per task and per group, rows from runs and from published ("reported") results.

Run scores come from the `full` variant; MEP tasks add utilization and faithfulness. Group boards show the
group's own scores and each member task's primary metric. Reported rows attach to boards by task name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

from mepbench.report.cells import Cell, estimate_cell, finite, label
from mepbench.report.reference import References, ReportedRow
from mepbench.report.runs import RunData

ReferenceMode = Literal["matching", "all", "none"]
# MEP columns in board order: the headline PF@m, then Acc@m (the paper's number) always beside its TPR and TNR-absent
FAITHFULNESS = tuple((f"{key}_{m[0]}", m, kind) for m in ("video", "audio") for key, kind in
                     (("pf", "headline"), ("acc_at", "masked"), ("control_acc", "control"), ("tnr_absent", "absent")))
UNGUARDED = ("Acc@V / Acc@A without TPR and TNR-absent: a model that answers “no” to every masked probe scores 100, "
             "so these numbers cannot tell perception from a bias")


@dataclass
class Entry:
    """One row of a board: a run (linked to its page) or a published result (with its citations)."""

    label: str
    kind: Literal["run", "reported"]
    cells: dict[str, Cell]
    setting: str = ""
    run_id: str | None = None
    citations: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    n: int | None = None
    failed: int | None = None
    mask_mode: str | None = None


@dataclass
class Board:
    """A sortable table for one task or group: metric columns, primary first, then its entries."""

    name: str
    kind: Literal["task", "group"]
    primary: str
    columns: list[str]
    entries: list[Entry]
    members: list[str] = field(default_factory=list)

    @property
    def caveats(self) -> list[str]:
        """Notes that concern the whole board (rows whose Acc@V/Acc@A stand without TPR and TNR-absent)."""
        return [UNGUARDED] if any(unguarded(e.cells) for e in self.entries) else []

    def header(self, column: str) -> str:
        """Column title: member tasks without the group's name as prefix (`mme-emotion-sa` → `sa`)."""
        prefix = f"{self.name}-"
        return column[len(prefix):] if column in self.members and column.startswith(prefix) else label(column)


def task_cells(agg: dict[str, Any]) -> dict[str, Cell]:
    """The `full`-variant metrics of one task aggregate on 0–100, plus MEP utilization and faithfulness."""
    factor = 100.0 / float(agg.get("scale") or 1)
    full = agg.get("variants", {}).get("full", {})
    cells = {m: estimate_cell(est, factor, full.get("n")) for m, est in full.get("metrics", {}).items()}
    util = agg.get("utilization") or {}
    if "overall" in util.get("recall", {}):
        counted = util.get("n_samples", 0) - util.get("excluded", {}).get("overall", 0)
        cells["utilization_recall"] = estimate_cell(util["recall"]["overall"], 100.0, counted)
    for modality in ("video", "audio"):
        grounded = (agg.get("grounded_utilization") or {}).get(modality)
        if grounded:
            cells[f"grounded_recall_{modality}"] = estimate_cell(grounded, 100.0, grounded.get("n"))
    for modality in ("video", "audio"):
        claims = (agg.get("claims") or {}).get(modality)
        if claims:
            cells[f"claim_rate_{modality[0]}"] = estimate_cell(claims["rate"], 100.0, claims.get("n"))
    for key, modality, kind in FAITHFULNESS:
        block = (agg.get("faithfulness") or {}).get(modality, {}).get(kind)
        if block is not None:
            estimate = block.get("accuracy", block)
            cells[key] = estimate_cell(estimate, 100.0, block.get("n"))
    return cells


def unguarded(cells: dict[str, Cell]) -> bool:
    """Whether a row shows Acc@V or Acc@A without the TPR and TNR-absent that make it readable."""
    return any(f"acc_at_{m}" in cells and not {f"control_acc_{m}", f"tnr_absent_{m}"} <= cells.keys() for m in "va")


def _run_task_entry(run: RunData, name: str) -> Entry:
    agg = run.tasks[name]
    full = agg.get("variants", {}).get("full", {})
    cells = task_cells(agg)
    return Entry(run.model_name, "run", cells, setting=run.id, run_id=run.id,
                 n=full.get("n", agg.get("n_samples")), failed=agg.get("n_failed"), mask_mode=agg.get("mask_mode"),
                 notes=[f"run made before the absent-cue probes; {UNGUARDED}"] if unguarded(cells) else [])


def _group_cells(run: RunData, group: dict[str, Any]) -> dict[str, Cell]:
    members = list(group.get("tasks", {}))
    scales = {float(run.tasks[m].get("scale") or 1) for m in members if m in run.tasks}
    factor = 100.0 / scales.pop() if len(scales) == 1 else 1.0
    overall = group.get("overall", {}).get("full", {}).get(group.get("mode", ""), {})
    cells = {k: Cell(finite(v)) for k, v in overall.items() if not k.startswith("n_") and finite(v) is not None}
    if not cells:
        mean = finite(group.get("mean"))
        cells["mean"] = Cell(None if mean is None else mean * factor)
    for member in members:
        if member in run.tasks:
            primary = run.tasks[member].get("primary_metric", "")
            cells[member] = task_cells(run.tasks[member]).get(primary, Cell(None))
    return cells


def _run_group_entry(run: RunData, name: str) -> Entry:
    cells = _group_cells(run, run.groups[name])
    members = [run.tasks[m] for m in run.groups[name].get("tasks", {}) if m in run.tasks]
    return Entry(run.model_name, "run", cells, setting=run.id, run_id=run.id,
                 n=sum(m.get("n_samples", 0) for m in members) or None,
                 failed=sum(m.get("n_failed", 0) for m in members))


def _reported_entries(rows: list[ReportedRow], board: str, members: list[str],
                      primaries: dict[str, str]) -> list[Entry]:
    """Entries for `board` from published rows, one per (file, model, setting); group boards also take each
    member's primary metric from the same entry."""
    grouped: dict[tuple[str, str, str], list[ReportedRow]] = {}
    for row in rows:
        grouped.setdefault((row.source_file, row.model, row.setting), []).append(row)
    entries = []
    for (_, model, setting), items in grouped.items():
        own = [r for r in items if r.task == board]
        if not own:
            continue
        cells = {r.metric: Cell(r.value, n=r.n, note=r.note, digits=r.digits) for r in own}
        used = list(own)
        for member in members:
            hit = next((r for r in items if r.task == member and r.metric == primaries.get(member)), None)
            if hit is not None:
                cells[member] = Cell(hit.value, n=hit.n, note=hit.note, digits=hit.digits)
                used.append(hit)
        notes = [f"{r.task} {r.metric}: {r.note}" for r in used if r.note]
        entries.append(Entry(model, "reported", cells, setting=setting,
                             citations=list(dict.fromkeys(r.citation for r in used)),
                             notes=notes + ([f"published {UNGUARDED}"] if unguarded(cells) else []),
                             n=next((r.n for r in own if r.n), None)))
    return entries


def _primaries(runs: list[RunData], refs: References) -> dict[str, str]:
    """Each task's primary metric: as the runs name it, else the first metric a reference file lists for it."""
    out: dict[str, str] = {}
    for run in runs:
        for name, agg in run.tasks.items():
            out.setdefault(name, agg.get("primary_metric", ""))
    for row in refs.rows:
        out.setdefault(row.task, row.metric)
    return out


def _columns(primary: str, entries: list[Entry], members: list[str]) -> list[str]:
    seen = dict.fromkeys([primary])
    for entry in entries:
        seen.update(dict.fromkeys(k for k in entry.cells if k not in members))
    return [c for c in seen if c] + members


def _sort_key(primary: str):
    def key(entry: Entry) -> tuple[int, float]:
        value = entry.cells.get(primary, Cell(None)).value
        return (value is None, -(value or 0.0))
    return key


def _board(name: str, kind: Literal["task", "group"], run_entries: list[Entry], refs: References,
           mode: ReferenceMode, members: list[str], primaries: dict[str, str]) -> Board:
    reported = [] if mode == "none" else _reported_entries(list(refs.rows), name, members, primaries)
    entries = run_entries + reported
    primary = primaries.get(name) or ("mean" if kind == "group" else "")
    if kind == "group" and primary not in {c for e in entries for c in e.cells}:
        primary = next((c for e in entries for c in e.cells if c not in members), primary)
    entries.sort(key=_sort_key(primary))
    return Board(name, kind, primary, _columns(primary, entries, members), entries, members)


def group_members(runs: list[RunData], name: str) -> list[str]:
    """Member tasks of a group as recorded by the runs, else as the task registry defines it."""
    for run in runs:
        if name in run.groups:
            return list(run.groups[name].get("tasks", {}))
    return list(_registry_groups().get(name, ()))


@lru_cache(maxsize=1)
def _registry_groups() -> dict[str, tuple[str, ...]]:
    from mepbench.tasks import TaskRegistry

    return {name: tuple(group.tasks) for name, group in TaskRegistry().groups.items()}


def build_boards(runs: list[RunData], refs: References, mode: ReferenceMode = "matching") -> list[Board]:
    """Boards for every group and task in the runs, each group followed by its members' task boards; with
    `mode="all"`, then every board that only has published rows, in the same order."""
    primaries = _primaries(runs, refs)
    run_names = list(dict.fromkeys([*(g for r in runs for g in r.groups), *(t for r in runs for t in r.tasks)]))
    extra = [n for n in refs.tasks() if n not in run_names] if mode == "all" else []
    boards: list[Board] = []
    placed: set[str] = set()
    for names in (run_names, extra):
        for group in (n for n in names if any(n in r.groups for r in runs) or group_members(runs, n)):
            members = group_members(runs, group)
            entries = [_run_group_entry(r, group) for r in runs if group in r.groups]
            boards.append(_board(group, "group", entries, refs, mode, members, primaries))
            placed.add(group)
            for member in (m for m in members if m in names and m not in placed):
                boards.append(_board(member, "task", _task_entries(runs, member), refs, mode, [], primaries))
                placed.add(member)
        for task in (n for n in names if n not in placed):
            boards.append(_board(task, "task", _task_entries(runs, task), refs, mode, [], primaries))
            placed.add(task)
    return boards


def _task_entries(runs: list[RunData], task: str) -> list[Entry]:
    return [_run_task_entry(r, task) for r in runs if task in r.tasks]
