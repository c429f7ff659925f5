"""A leaderboard over repeated runs of one experiment (seeds): each cell shows the mean with its 95% CI across
seeds and the per-seed values beneath it, so the spread sits next to the mean. The mini OPPO reproduction writes
one (`leaderboards/mini-repro/site/index.html`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mepbench.report.cells import Cell
from mepbench.report.render import write_page


@dataclass(frozen=True)
class SeedCell:
    """One row × column: the mean over seeds with its CI (a `Cell`, 0–100 scale) and each seed's value."""

    mean: Cell
    per_seed: tuple[float | None, ...]


@dataclass(frozen=True)
class SeedRow:
    """A model of the experiment and its cells by column key."""

    label: str
    cells: dict[str, SeedCell]


@dataclass(frozen=True)
class SeedBoard:
    """The page: the columns (key, header), the rows, the seeds in per-seed order, links (text, href) to each
    seed's own report, notes printed under the title, and an optional second table of pre-registered contrasts
    (`contrast_header`, then one tuple of already formatted cells per contrast)."""

    title: str
    columns: list[tuple[str, str]]
    rows: list[SeedRow]
    seeds: list[int]
    links: list[tuple[str, str]]
    notes: list[str]
    contrast_header: tuple[str, ...] = ()
    contrasts: tuple[tuple[str, ...], ...] = ()


def write_seed_board(board: SeedBoard, path: Path) -> Path:
    """Render `board` into the HTML file `path` (the report's stylesheet, sortable tables and CSP)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_page(path, "seeds.jinja", title=board.title, board=board)
    return path
