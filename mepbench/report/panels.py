"""Per-run, per-task panels: metrics per variant with reliance against `full`, MEP perception (utilization per
modality, grounded utilization, claims under masking, the three probe sets with the headline PF), confusion matrices
and the run facts."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from mepbench.report.cells import Cell, estimate_cell, label
from mepbench.report.charts import BarChart, ConfusionView, bar_chart, confusion_from_pairs, confusions_from_details
from mepbench.report.runs import RunData

KNOWN_KEYS = {"variants", "reliance", "scale", "utilization", "faithfulness", "summary", "primary_metric",
              "grounded_utilization", "claims", "utilization_masked",
              "fingerprint", "mask_mode", "n_samples", "n_failed", "extraction", "extraction_mode", "checkpoints",
              "selected_checkpoint", "checkpoint_select"}
FACTS = (("mask_mode", "mask mode"), ("primary_metric", "primary metric"), ("n_samples", "samples"),
         ("n_failed", "failed rows"), ("fingerprint", "task fingerprint"), ("extraction", "extraction"),
         ("extraction_mode", "extraction mode"), ("selected_checkpoint", "checkpoint"),
         ("checkpoint_select", "checkpoint rule"))
EXTRA_CHARS = 2000


@dataclass(frozen=True)
class VariantLine:
    """One variant's metrics, and its reliance on what the variant removes (primary-metric drop, flip rate)."""

    name: str
    n: int | None
    failed: int | None
    cells: dict[str, Cell]
    drop: Cell | None
    flip: Cell | None


@dataclass(frozen=True)
class ProbeLine:
    """Faithfulness for one modality: TPR (present cue, full input, "yes"), TNR-absent (absent cue, full input, "no"),
    TNR-masked = Acc@m (present cue, m masked, "no"), the headline PF, the yes-rate and the answer counts."""

    modality: str
    control: Cell
    absent: Cell
    masked: Cell
    headline: Cell
    yes_rate: Cell
    answers: str


@dataclass
class TaskPanel:
    """Everything the run page shows for one task."""

    name: str
    primary: str
    metrics: list[str]
    variants: list[VariantLine]
    facts: list[tuple[str, str]]
    reliance: BarChart | None = None
    utilization: BarChart | None = None
    grounded: BarChart | None = None
    claims: BarChart | None = None
    faithfulness: BarChart | None = None
    probes: list[ProbeLine] = field(default_factory=list)
    checkpoints: BarChart | None = None
    confusions: list[ConfusionView] = field(default_factory=list)
    extra: list[tuple[str, str]] = field(default_factory=list)


def _variants(agg: dict[str, Any], factor: float, primary: str) -> list[VariantLine]:
    lines = []
    for name, block in agg.get("variants", {}).items():
        rel = agg.get("reliance", {}).get(name, {})
        drop = rel.get("drop", {}).get(primary)
        lines.append(VariantLine(name, block.get("n"), block.get("failed"),
                                 {m: estimate_cell(e, factor) for m, e in block.get("metrics", {}).items()},
                                 estimate_cell(drop, factor) if drop is not None else None,
                                 estimate_cell(rel["flip_rate"]) if "flip_rate" in rel else None))
    return lines


def _answers(block: dict[str, Any]) -> str:
    return "; ".join(f"{name}: " + ", ".join(f"{k[2:]} {block[kind].get(k, 0)}" for k in ("n_yes", "n_no", "n_unparsed"))
                     for name, kind in (("TPR", "control"), ("absent", "absent"), ("masked", "masked"))
                     if kind in block)


def _perception(panel: TaskPanel, agg: dict[str, Any]) -> None:
    util = agg.get("utilization") or {}
    if util.get("recall"):
        panel.utilization = bar_chart(f"utilization: cue recall per modality ({util.get('embedder', 'embedder')}, "
                                      f"τ = {util.get('tau')})",
                                      [(m, estimate_cell(e)) for m, e in util["recall"].items()])
    grounded = [(f"{m} (full − {g['variant']})", estimate_cell(g, n=g.get("n")))
                for m, g in (agg.get("grounded_utilization") or {}).items() if g.get("n")]
    if grounded:
        panel.grounded = bar_chart("grounded utilization: recall with the modality minus recall without it", grounded)
    claims = [(f"{m} cue under {c['variant']}", estimate_cell(c["rate"], n=c.get("n")))
              for m, c in (agg.get("claims") or {}).items()]
    if claims:
        panel.claims = bar_chart("claims under masking: answers that claim a cue of the masked modality (lower is "
                                 "better)", claims)
    bars = []
    for modality, block in (agg.get("faithfulness") or {}).items():
        if "absent" not in block:  # a run from before the three-part probes
            continue
        short = modality[0].upper()
        probe = ProbeLine(modality, estimate_cell(block["control"]["accuracy"], n=block["control"].get("n")),
                          estimate_cell(block["absent"]["accuracy"], n=block["absent"].get("n")),
                          estimate_cell(block["masked"]["accuracy"], n=block["masked"].get("n")),
                          estimate_cell(block["headline"]), estimate_cell(block["yes_rate"]), _answers(block))
        panel.probes.append(probe)
        bars += [(f"TPR {short} (yes)", probe.control), (f"TNR-absent {short} (no)", probe.absent),
                 (f"Acc@{short} = TNR-masked (no)", probe.masked), (f"PF@{short}", probe.headline)]
    if bars:
        panel.faithfulness = bar_chart("faithfulness: the three probe sets and the headline PF (chance 50)", bars)


def _classification_confusion(run: RunData, task: str) -> ConfusionView | None:
    rows = run.main_rows(task)
    if rows.empty or rows["pred"].isna().all():
        return None
    pairs = [(lab, pred if isinstance(pred, str) else None)
             for lab, pred in zip(rows["label"], rows["pred"]) if isinstance(lab, str)]
    return confusion_from_pairs("full input: label × prediction", pairs)


def _extra(agg: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for key in sorted(set(agg) - KNOWN_KEYS):
        text = json.dumps(agg[key], default=str, sort_keys=True)
        out.append((key, text if len(text) <= EXTRA_CHARS else text[:EXTRA_CHARS] + " …"))
    return out


def task_panel(run: RunData, name: str) -> TaskPanel:
    """The panel of task `name` in `run`."""
    agg = run.tasks[name]
    factor = 100.0 / float(agg.get("scale") or 1)
    primary = agg.get("primary_metric", "")
    variants = _variants(agg, factor, primary)
    metrics = list(dict.fromkeys(m for v in variants for m in v.cells))
    facts = [(title, str(agg[key])) for key, title in FACTS if agg.get(key) not in (None, "")]
    panel = TaskPanel(name, primary, metrics, variants, facts, extra=_extra(agg))
    if len(variants) > 1:
        panel.reliance = bar_chart(f"reliance: {label(primary)} under each variant",
                                   [(v.name, v.cells.get(primary, Cell(None))) for v in variants])
    _perception(panel, agg)
    if agg.get("checkpoints"):
        panel.checkpoints = bar_chart(f"{label(primary)} per checkpoint (selected: {agg.get('selected_checkpoint')})",
                                      [(c, estimate_cell(v, factor)) for c, v in agg["checkpoints"].items()])
    full = agg.get("variants", {}).get("full", {})
    panel.confusions = confusions_from_details(full.get("details") or {})
    if not panel.confusions and (view := _classification_confusion(run, name)) is not None:
        panel.confusions = [view]
    return panel
