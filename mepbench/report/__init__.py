"""Static HTML reports from run directories: leaderboards across runs beside published ("reported") results,
per-run pages and a per-sample explorer; the folder opens from disk with no server and no network.

Names are imported on first use, so `mepbench.report.cli` stays cheap to import for the command line.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "ReportOptions": "build", "build_report": "build", "Board": "leaderboard", "Entry": "leaderboard",
    "build_boards": "leaderboard", "References": "reference", "ReportedRow": "reference",
    "default_reference_dir": "reference", "load_references": "reference", "RunData": "runs", "load_run": "runs",
    "load_runs": "runs", "Cell": "cells", "SeedBoard": "seeds", "SeedCell": "seeds", "SeedRow": "seeds",
    "write_seed_board": "seeds",
}
__all__ = ["Board", "Cell", "Entry", "References", "ReportOptions", "ReportedRow", "RunData", "SeedBoard", "SeedCell",
           "SeedRow", "build_boards", "build_report", "default_reference_dir", "load_references", "load_run", "load_runs",
           "write_seed_board"]


def __getattr__(name: str) -> Any:
    """Resolve a public name from its submodule on first access."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mepbench.report' has no attribute {name!r}")
    return getattr(import_module(f"mepbench.report.{_EXPORTS[name]}"), name)
