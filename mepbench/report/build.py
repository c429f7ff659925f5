"""Build the static report folder: `index.html` (leaderboards, runs, citations), one page per run (metadata,
task panels, failures) and one explorer page per run and task, plus poster-frame thumbnails in `media/`."""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mepbench.report.explorer import run_posters, sample_views
from mepbench.report.leaderboard import ReferenceMode, build_boards
from mepbench.report.media import copy_posters
from mepbench.report.panels import task_panel
from mepbench.report.reference import References, load_references
from mepbench.report.render import write_page
from mepbench.report.runs import RunData, load_runs

FAILURES_SHOWN = 500


@dataclass(frozen=True)
class ReportOptions:
    """How a report is built: which published rows to show, whether to show the runs' poster frames, and how much of
    each non-primary response to keep. Everything else comes from the run directories alone."""

    references: ReferenceMode = "matching"
    reference_dir: Path | None = None
    thumbnails: bool = True
    response_chars: int | None = 400
    title: str = "mepbench report"


def run_page(run_id: str) -> str:
    """File name of a run's page."""
    return f"run-{run_id}.html"


def explorer_page(run_id: str, task: str) -> str:
    """File name of the sample explorer of one task in one run."""
    return f"samples-{run_id}-{re.sub(r'[^A-Za-z0-9._-]+', '-', task)}.html"


def _metadata(run: RunData) -> list[tuple[str, str]]:
    meta, config, git = run.metadata, run.config, run.metadata.get("git") or {}
    rows = [("run directory", str(run.path.resolve())), ("created", str(run.results.get("created", ""))),
            ("model", str(config.get("model", ""))), ("backend", str(meta.get("backend", ""))),
            ("model fingerprint", str(meta.get("model_fingerprint", ""))),
            ("git commit", f"{git.get('commit') or 'unknown'}{' (dirty)' if git.get('dirty') else ''}"),
            ("command", " ".join(map(str, meta.get("command") or []))),
            ("python / platform", f"{meta.get('python', '')} / {meta.get('platform', '')}"),
            ("seed / bootstrap resamples", f"{meta.get('seed')} / {meta.get('bootstrap_resamples')}"),
            ("judges", json.dumps(config.get("judges") or {}, sort_keys=True)),
            ("judge options", json.dumps(config.get("judge_args") or {}, sort_keys=True)),
            ("embedder / cue extractor override", f"{config.get('embedder') or '—'} / {config.get('cue_extractor') or '—'}"),
            ("mask mode per task", ", ".join(f"{t}: {m}" for t, m in (meta.get("mask_mode") or {}).items())),
            ("task fingerprints", ", ".join(f"{t}: {f}" for t, f in (meta.get("task_fingerprints") or {}).items())),
            ("model details", json.dumps(meta.get("model") or {}, sort_keys=True, default=str))]
    return rows


def _failures(run: RunData) -> tuple[list[dict[str, Any]], list[tuple[str, int]], int]:
    frame = run.samples
    failed = frame[frame["error"].notna()]
    rows = failed[["task", "sample_id", "variant", "item", "error"]].head(FAILURES_SHOWN).to_dict("records")
    return rows, Counter(map(str, failed["error"])).most_common(20), len(failed)


def _note(run: RunData, task: str) -> str | None:
    """Why the explorer of `task` shows no cue matches, when the task scores cues but the run recorded none."""
    frame = run.samples
    rows = frame[(frame["task"] == task) & (frame["kind"] == "main")]
    has_cues = any(isinstance(s, dict) and "pred_cues" in s for s in rows["scores"])
    if has_cues and not any(rows["cue_matches"].map(bool)):
        return "this run recorded no cue matches (no reference cues, or every extraction failed)"
    return None


def write_run_pages(run: RunData, thumbs: dict[str, str], out: Path, options: ReportOptions) -> int:
    """Write the run page and the explorer page of each task of one run; returns the bytes written."""
    common = {"title": options.title, "run_page": run_page, "explorer_page": explorer_page}
    failures, top_errors, n_failed = _failures(run)
    written = write_page(out / run_page(run.id), "run.jinja", run=run, metadata=_metadata(run),
                         packages=sorted((run.metadata.get("packages") or {}).items()),
                         stats=run.results.get("stats", {}), panels=[task_panel(run, t) for t in run.tasks],
                         groups=run.groups, failures=failures, top_errors=top_errors, n_failed=n_failed,
                         shown=FAILURES_SHOWN, **common)
    for task in run.tasks:
        views = sample_views(run, task, thumbs, options.response_chars)
        written += write_page(out / explorer_page(run.id, task), "samples.jinja", run=run, task=task,
                              note=_note(run, task), samples=views, **common)
    return written


def build_report(run_dirs: list[str | Path], out: str | Path, options: ReportOptions = ReportOptions()) -> Path:
    """Render the report for `run_dirs` into the folder `out`; returns the path of `index.html`."""
    started = time.time()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs = load_runs(list(run_dirs))
    refs = References((), {}) if options.references == "none" else load_references(options.reference_dir)
    boards = build_boards(runs, refs, options.references)
    for run in runs:
        thumbs = copy_posters(run.path, run_posters(run), out) if options.thumbnails else {}
        write_run_pages(run, thumbs, out, options)
    cited = list(dict.fromkeys(c for b in boards for e in b.entries for c in e.citations))
    index = out / "index.html"
    write_page(index, "index.jinja", runs=runs, boards=boards, citations=[refs.citations[c] for c in cited],
               citations_by_key=refs.citations, citation_numbers={c: i + 1 for i, c in enumerate(cited)},
               reference_mode=options.references, seconds=time.time() - started, title=options.title,
               run_page=run_page, explorer_page=explorer_page)
    return index
