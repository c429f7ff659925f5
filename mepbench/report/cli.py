"""`mepbench report RUN_DIR... -o OUT`: the typer command (registered by `mepbench.cli`); the report code is
imported when the command runs, so the CLI starts fast."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

REFERENCE_MODES = ("matching", "all", "none")


def report_command(
    run_dirs: list[Path] = typer.Argument(..., exists=True, file_okay=False, help="Run directories "
                                          "(each with results.json and samples.parquet)."),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder; open OUT/index.html from disk."),
    references: str = typer.Option("matching", help="Published rows: matching (boards of the runs' tasks), "
                                                    "all (every published board) or none."),
    reference_dir: Optional[Path] = typer.Option(None, help="Folder of published results (default "
                                                            "$MEPBENCH_REFERENCE_DIR or leaderboards/reference)."),
    thumbnails: bool = typer.Option(True, "--thumbnails/--no-thumbnails", help="Show the poster frames the runs "
                                                                           "recorded."),
    response_chars: int = typer.Option(400, help="Keep this many characters of each response other than "
                                                  "the full-input reasoning (0 keeps all)."),
    title: str = typer.Option("mepbench report", help="Report title."),
) -> None:
    """Render a static HTML report (leaderboards, run pages, sample explorer) from run directories."""
    from mepbench.report.build import ReportOptions, build_report

    if references not in REFERENCE_MODES:
        raise typer.BadParameter(f"--references must be one of {', '.join(REFERENCE_MODES)}")
    options = ReportOptions(references=references, reference_dir=reference_dir,
                            thumbnails=thumbnails, response_chars=response_chars or None, title=title)
    index = build_report(run_dirs, out, options)
    typer.echo(f"wrote {index}")
