"""The mini-reproduction's leaderboard: per-row metrics from each seed's `mepbench eval` run, means with 95% CIs
across seeds (a single seed shows its bootstrap CI), a Markdown table, an HTML page over the seeds, the data as
JSON, and the run metadata."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import pandas as pd

from mepbench import default_cache_dir, git_state, load_run, strict_dumps
from mepbench.report import Cell, SeedBoard, SeedCell, SeedRow, write_seed_board
from oppo_train.config import to_dict
from oppo_train.contrasts import PRIMARY_BY_KEY, paired_contrasts, t_interval
from oppo_train.variants import VARIANTS

ROW_NAMES = {"sft": "SFT only", **{name: v.title for name, v in VARIANTS.items()}}
# column key → (header, JSON pointer of the estimate in the task's results). Acc@V / Acc@A (the paper's numbers) are
# always followed by their TPR and TNR-absent, and preceded by the headline PF that an all-no, all-yes or
# mask-detecting answer policy cannot raise above 50.
COLUMNS: dict[str, tuple[str, str]] = {
    "accuracy": ("Acc", "/variants/full/metrics/accuracy"),
    "util_v": ("Util V", "/utilization/recall/video"),
    "util_a": ("Util A", "/utilization/recall/audio"),
    "grounded_v": ("Grounded V", "/grounded_utilization/video"),
    "grounded_a": ("Grounded A", "/grounded_utilization/audio"),
    "claims_v": ("Claims −V ↓", "/claims/video/rate"),
    "claims_a": ("Claims −A ↓", "/claims/audio/rate"),
    "pf_v": ("PF@V", "/faithfulness/video/headline"),
    "acc_at_v": ("Acc@V", "/faithfulness/video/masked/accuracy"),
    "control_v": ("TPR V", "/faithfulness/video/control/accuracy"),
    "tnr_absent_v": ("TNR-abs V", "/faithfulness/video/absent/accuracy"),
    "pf_a": ("PF@A", "/faithfulness/audio/headline"),
    "acc_at_a": ("Acc@A", "/faithfulness/audio/masked/accuracy"),
    "control_a": ("TPR A", "/faithfulness/audio/control/accuracy"),
    "tnr_absent_a": ("TNR-abs A", "/faithfulness/audio/absent/accuracy"),
    "drop_v": ("Drop −V", "/reliance/mask:video/drop/accuracy"),
    "drop_a": ("Drop −A", "/reliance/mask:audio/drop/accuracy"),
    "text_only": ("Text-only acc", "/variants/mask:video+audio/metrics/accuracy"),
}
EVIDENCE = ("video", "audio", "text")  # accuracy on clips that only this modality decides


def evidence_accuracy(run: Path, task: str, manifest: Path) -> dict[str, float | None]:
    """Full-input accuracy on the clips decided by one modality alone (mep-synth's `decided_by`)."""
    rows = pd.read_parquet(run / "samples.parquet")
    rows = rows[(rows.task == task) & (rows.variant == "full") & (rows.item == "")]
    decided = {}
    for line in manifest.read_text().splitlines():
        record = json.loads(line)
        decided[record["id"]] = record.get("metadata", {}).get("decided_by")
    out: dict[str, float | None] = {}
    for modality in EVIDENCE:
        picked = rows[rows.sample_id.map(decided) == modality]
        out[f"acc_only_{modality}"] = float(picked.correct.mean()) if len(picked) else None
        out[f"n_only_{modality}"] = len(picked)
    return out


def row_metrics(run: Path, task: str, manifest: Path | None) -> dict[str, Any]:
    """One eval run's metrics (with its bootstrap CIs) and its generation time, read through `load_run`."""
    result = load_run(run).result
    estimates = result.tasks[task]
    out: dict[str, Any] = {"values": {}, "ci": {}}
    for key, (_, pointer) in COLUMNS.items():
        got = estimates.metric(pointer)
        out["values"][key] = got.value if got is not None else None
        interval = (got.ci_low, got.ci_high) if got is not None else (None, None)
        out["ci"][key] = None if None in interval else interval
    if manifest is not None:
        out["values"].update(evidence_accuracy(run, task, manifest))
    out["generation_seconds"] = result.stats.get("generation_seconds")
    return out


SIGNED = {"grounded_v", "grounded_a", "drop_v", "drop_a"}  # differences of two rates: they lie in [-1, 1]


def metric_range(key: str) -> tuple[float, float]:
    """The range of a column's values (fractions): [-1, 1] for differences, else [0, 1]."""
    return (-1.0, 1.0) if key in SIGNED else (0.0, 1.0)


def across_seeds(values: list[float], bounds: tuple[float, float] = (0.0, 1.0)) -> dict[str, float | None]:
    """Mean and a t-based 95% CI over seeds, intersected with the metric's range `bounds` (none for one seed)."""
    n = len(values)
    mean = sum(values) / n
    interval = t_interval(values, *bounds)
    if interval is None:
        return {"mean": mean, "ci_low": None, "ci_high": None, "n_seeds": n}
    return {"mean": mean, "ci_low": interval[0], "ci_high": interval[1], "n_seeds": n}


def summarise(per_seed: dict[int, dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """row → metric → mean/CI over seeds (the bootstrap CI of the one run when there is a single seed)."""
    rows = next(iter(per_seed.values())).keys()
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        keys = next(iter(per_seed.values()))[row]["values"].keys()
        out[row] = {}
        for key in keys:
            values = [s[row]["values"][key] for s in per_seed.values() if s[row]["values"].get(key) is not None]
            if not values:
                out[row][key] = None
                continue
            cell = across_seeds(values, metric_range(key))
            if len(per_seed) == 1:
                ci = next(iter(per_seed.values()))[row]["ci"].get(key)
                if ci:
                    cell.update(ci_low=ci[0], ci_high=ci[1], ci_kind="bootstrap over clips")
            else:
                cell["ci_kind"] = "t over seeds, within the metric's range"
            out[row][key] = cell
    return out


def _cell(cell: dict[str, Any] | None) -> str:
    if cell is None:
        return "—"
    text = f"{100 * cell['mean']:.1f}"
    if cell.get("ci_low") is not None:
        text += f" [{100 * cell['ci_low']:.1f}, {100 * cell['ci_high']:.1f}]"
    return text


def table_columns() -> list[tuple[str, str]]:
    """(metric key, header) of every leaderboard column, in order."""
    keys = list(COLUMNS) + [f"acc_only_{m}" for m in EVIDENCE]
    return [(k, COLUMNS[k][0] if k in COLUMNS else f"Acc ({k.removeprefix('acc_only_')[0].upper()}-only clips)")
            for k in keys]


def markdown_table(summary: dict[str, dict[str, Any]]) -> str:
    """The leaderboard as a Markdown table (percentages; 95% CIs in brackets)."""
    columns = table_columns()
    lines = ["| model | " + " | ".join(h for _, h in columns) + " |", "|---|" + "---|" * len(columns)]
    for row, cells in summary.items():
        lines.append(f"| {ROW_NAMES.get(row, row)} | " + " | ".join(_cell(cells.get(k)) for k, _ in columns) + " |")
    return "\n".join(lines)


def _points(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:+.1f}"


CONTRAST_HEADER = ("contrast", "metric", "per-seed differences", "mean [95% CI]", "seeds", "p", "p (Holm)",
                   "verdict")


def contrast_cells(entry: dict[str, Any]) -> tuple[str, ...]:
    """One contrast as formatted cells (percentage points, first row minus second; see CONTRAST_HEADER)."""
    headers = dict(table_columns())
    ci = entry["ci"]
    mean = _points(entry["mean"]) + (f" [{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]" if ci else "")
    better = "↑" if entry["higher_is_better"] else "↓"
    label = headers.get(entry["metric"], entry["metric"]).rstrip(" ↑↓")  # the contrast states its own direction
    treated, control = (ROW_NAMES.get(entry[k], entry[k]) for k in ("treated", "control"))
    return (f"{treated} − {control}", f"{label} {better}", " / ".join(map(_points, entry["diffs"])),
            mean, str(entry["n_seeds"]), "—" if entry["p"] is None else f"{entry['p']:.3g}",
            "—" if entry["p_holm"] is None else f"{entry['p_holm']:.3g}", entry["verdict"])


def contrast_note(entries: list[dict[str, Any]], alpha: float) -> str:
    """How the contrasts were tested, in one sentence."""
    return (f"Paired t-tests over seeds, Holm's correction over all {len(entries)} tests; a verdict needs p (Holm) "
            f"< {alpha} in the claimed direction (↑ higher is better, ↓ lower is better), else inconclusive.")


def contrast_markdown(entries: list[dict[str, Any]], alpha: float) -> str:
    """The pre-registered paired contrasts as a Markdown table with the note on the test."""
    lines = ["| " + " | ".join(CONTRAST_HEADER) + " |", "|" + "---|" * len(CONTRAST_HEADER)]
    lines += ["| " + " | ".join(contrast_cells(e)) + " |" for e in entries]
    return "\n".join(lines) + "\n\n" + contrast_note(entries, alpha)


def _percent(value: float | None) -> float | None:
    return None if value is None else 100 * value


def seed_board(summary: dict[str, dict[str, Any]], per_seed: dict[int, dict[str, dict[str, Any]]],
               report_links: dict[int, str], contrasts: list[dict[str, Any]] = (), alpha: float = 0.05) -> SeedBoard:
    """The HTML leaderboard over seeds: mean [CI] and per-seed values of every column, links to each seed's report."""
    columns, rows = table_columns(), []
    for row, cells in summary.items():
        out = {}
        for key, _ in columns:
            cell = cells.get(key)
            if cell is None:
                continue
            mean = Cell(_percent(cell["mean"]), _percent(cell.get("ci_low")), _percent(cell.get("ci_high")), digits=1)
            out[key] = SeedCell(mean, tuple(_percent(s[row]["values"].get(key)) for s in per_seed.values()))
        rows.append(SeedRow(ROW_NAMES.get(row, row), out))
    kind = next((c.get("ci_kind") for cells in summary.values() for c in cells.values() if c), None)
    notes = [f"Intervals: {kind}." if kind else "One seed: no interval.",
             ("PF@m = min((TPR + TNR-absent)/2, (TPR + Acc@m)/2): an all-no, all-yes or mask-detecting answer policy "
              "scores 50. Grounded = cue recall with the modality minus recall with it masked; Claims = share of "
              "answers written with the modality masked that claim a cue of it (lower is better).")]
    return SeedBoard("Mini OPPO reproduction on mep-synth", columns, rows, list(per_seed),
                     [(f"seed {seed}: its {len(per_seed[seed])} evaluations", href)
                      for seed, href in report_links.items()], notes + ([contrast_note(contrasts, alpha)] if contrasts
                                                                        else []),
                     CONTRAST_HEADER, tuple(contrast_cells(e) for e in contrasts))


def write_leaderboard(config: Any, runs: dict[int, dict[str, Path]], stages: dict[str, Any], wall_seconds: float,
                      eval_suite: dict[str, int]) -> Path:
    """results.json (per seed, summary, metadata) and table.md under the config's out_dir; returns the folder."""
    from mepbench.tasks import mep_synth_root

    cache = Path(config.cache_dir) if config.cache_dir else default_cache_dir()
    manifest = mep_synth_root(cache, eval_suite["n"], eval_suite["seed"]) / "manifest.jsonl"
    per_seed = {seed: {row: row_metrics(run, config.eval_task, manifest if manifest.is_file() else None)
                       for row, run in rows.items()} for seed, rows in runs.items()}
    metadata = {"config": to_dict(config), "eval_suite": eval_suite, "leaderboard_written_at": writer_code(),
                "machine": machine(), "wall_seconds": wall_seconds, "seed_seconds": seed_seconds(stages["seconds"]),
                "stages": stages}
    return write_board(Path(config.out_dir), per_seed, metadata)


def write_board(out: Path, per_seed: dict[int, dict[str, dict[str, Any]]], metadata: dict[str, Any]) -> Path:
    """Summary and the pre-registered contrasts (from `metadata["config"]`) of per-seed row metrics, written as
    results.json, table.md and site/index.html under `out`; returns `out`."""
    config = metadata["config"]
    summary = summarise(per_seed)
    primaries = tuple(PRIMARY_BY_KEY[key] for key in config["primary"])
    ran = next(iter(per_seed.values()))
    pairs = [tuple(pair) for pair in config["contrasts"]]
    contrasts = paired_contrasts(per_seed, [pair for pair in pairs if all(row in ran for row in pair)], primaries,
                                 config["alpha"])
    missing = [" − ".join(pair) for pair in pairs if not all(row in ran for row in pair)]
    out.mkdir(parents=True, exist_ok=True)
    data = {"summary": summary, "contrasts": contrasts, "contrasts_not_run": missing,
            "per_seed": {str(k): v for k, v in per_seed.items()}, "metadata": metadata}
    (out / "results.json").write_text(strict_dumps(data, indent=2) + "\n")
    (out / "table.md").write_text(markdown_table(summary) + "\n\n## Pre-registered paired contrasts\n\n"
                                  + contrast_markdown(contrasts, config["alpha"])
                                  + (f"\n\nPre-registered contrasts not run (a row is missing): {', '.join(missing)}."
                                     if missing else "") + "\n")
    links = {seed: f"seed-{seed}/index.html" for seed in per_seed}
    write_seed_board(seed_board(summary, per_seed, links, contrasts, config["alpha"]), out / "site" / "index.html")
    return out


def writer_code() -> dict[str, Any]:
    """The commit (and dirty flag) of the code writing a leaderboard."""

    return git_state(Path(__file__).parent)


def machine() -> dict[str, Any]:
    """The machine a leaderboard was written on."""
    return {"platform": platform.platform(), "processor": platform.processor(), "cpus": _cpu_count()}


def seed_seconds(stage_seconds: dict[str, float]) -> dict[str, float]:
    """Total stage time per seed ("seed-0/sft" → "seed-0"): what one seed costs, whichever invocation ran it."""
    out: dict[str, float] = {}
    for name, seconds in stage_seconds.items():
        seed = name.split("/")[0]
        out[seed] = out.get(seed, 0.0) + seconds
    return out


def _cpu_count() -> int | None:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
