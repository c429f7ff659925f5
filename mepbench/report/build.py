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

from mepbench.report.explorer import sample_videos, sample_views
from mepbench.report.leaderboard import ReferenceMode, build_boards
from mepbench.report.media import make_thumbnails
from mepbench.report.panels import task_panel
from mepbench.report.reference import References, load_references
from mepbench.report.render import write_page
from mepbench.report.runs import RunData, load_runs
from mepbench.report.sample_data import SampleLoader, TaskSamples

FAILURES_SHOWN = 500


@dataclass(frozen=True)
class ReportOptions:
    """How a report is built: which published rows to show, whether to reload task data (subtitles, reference
    cues) and make thumbnails, and how much of each non-primary response to keep."""

    references: ReferenceMode = "matching"
    reference_dir: Path | None = None
    reload_samples: bool = True
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


def _task_samples(runs: list[RunData], options: ReportOptions) -> dict[tuple[str, str], TaskSamples]:
    loader = SampleLoader()
    skipped = TaskSamples(note="samples not reloaded (reloading was turned off)")
    return {(run.id, task): loader(run, task) if options.reload_samples else skipped
            for run in runs for task in run.tasks}


def write_run_pages(run: RunData, data: dict[str, TaskSamples], thumbs: dict[str, str], out: Path,
                    options: ReportOptions) -> int:
    """Write the run page and the explorer page of each task of one run; returns the bytes written."""
    common = {"title": options.title, "run_page": run_page, "explorer_page": explorer_page}
    failures, top_errors, n_failed = _failures(run)
    written = write_page(out / run_page(run.id), "run.jinja", run=run, metadata=_metadata(run),
                         packages=sorted((run.metadata.get("packages") or {}).items()),
                         stats=run.results.get("stats", {}), panels=[task_panel(run, t) for t in run.tasks],
                         groups=run.groups, failures=failures, top_errors=top_errors, n_failed=n_failed,
                         shown=FAILURES_SHOWN, **common)
    for task, task_data in data.items():
        views = sample_views(run, task, task_data, thumbs, options.response_chars)
        written += write_page(out / explorer_page(run.id, task), "samples.jinja", run=run, task=task,
                              note=task_data.note, samples=views, **common)
    return written


def build_report(run_dirs: list[str | Path], out: str | Path, options: ReportOptions = ReportOptions()) -> Path:
    """Render the report for `run_dirs` into the folder `out`; returns the path of `index.html`."""
    started = time.time()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs = load_runs(list(run_dirs))
    refs = References((), {}) if options.references == "none" else load_references(options.reference_dir)
    boards = build_boards(runs, refs, options.references)
    data = _task_samples(runs, options)
    videos = [v for run in runs for task in run.tasks for v in sample_videos(run, task, data[(run.id, task)])]
    thumbs = make_thumbnails(videos, out) if options.thumbnails else {}
    for run in runs:
        write_run_pages(run, {t: data[(run.id, t)] for t in run.tasks}, thumbs, out, options)
    cited = list(dict.fromkeys(c for b in boards for e in b.entries for c in e.citations))
    index = out / "index.html"
    write_page(index, "index.jinja", runs=runs, boards=boards, citations=[refs.citations[c] for c in cited],
               citations_by_key=refs.citations, citation_numbers={c: i + 1 for i, c in enumerate(cited)},
               reference_mode=options.references, seconds=time.time() - started, title=options.title,
               run_page=run_page, explorer_page=explorer_page)
    return index
