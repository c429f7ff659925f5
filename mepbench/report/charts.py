"""Chart geometry for inline SVG (drawn by the `macros.jinja` macros, so every label goes through autoescape):
horizontal bars with CI whiskers on a 0–100 axis, and shaded confusion matrices."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mepbench.report.cells import Cell, fmt

ROW_HEIGHT = 22
CHAR_WIDTH = 6.5  # average advance of the 11 px label font
LABEL_WIDTH = (80, 260)
PLOT_WIDTH = 300
VALUE_WIDTH = 110
TOP = 8
AXIS = 22


@dataclass(frozen=True)
class BarGeometry:
    """One bar: its label, pixel geometry and the value text; whisker ends are None without a CI."""

    label: str
    y: float
    width: float
    text: str
    ci_x1: float | None
    ci_x2: float | None


@dataclass(frozen=True)
class BarChart:
    """A horizontal bar chart on a fixed 0–`maximum` axis."""

    title: str
    width: int
    height: int
    label_width: int
    plot_width: int
    bar_height: int
    bars: tuple[BarGeometry, ...]
    ticks: tuple[tuple[float, str], ...]


def _x(value: float, maximum: float) -> float:
    return round(PLOT_WIDTH * min(max(value, 0.0), maximum) / maximum, 1)


def bar_chart(title: str, bars: list[tuple[str, Cell]], maximum: float = 100.0) -> BarChart:
    """Lay out `(label, cell)` bars; values are clamped to [0, maximum], missing values draw no bar."""
    geometry = []
    for i, (name, cell) in enumerate(bars):
        ci = (_x(cell.low, maximum), _x(cell.high, maximum)) if cell.has_ci else (None, None)
        text = fmt(cell.value, 1) + (f" [{fmt(cell.low, 1)}, {fmt(cell.high, 1)}]" if cell.has_ci else "")
        geometry.append(BarGeometry(name, TOP + i * ROW_HEIGHT, 0.0 if cell.value is None else _x(cell.value, maximum),
                                    text, *ci))
    ticks = tuple((_x(maximum * k / 4, maximum), fmt(maximum * k / 4, 0)) for k in range(5))
    height = TOP + len(bars) * ROW_HEIGHT + AXIS
    longest = max((len(name) for name, _ in bars), default=0)
    label_width = int(min(max(longest * CHAR_WIDTH + 8, LABEL_WIDTH[0]), LABEL_WIDTH[1]))
    return BarChart(title, label_width + PLOT_WIDTH + VALUE_WIDTH, height, label_width, PLOT_WIDTH,
                    ROW_HEIGHT - 6, tuple(geometry), ticks)


@dataclass(frozen=True)
class ConfusionView:
    """A confusion matrix with each cell's count and its shade (row-normalised, 0–1)."""

    title: str
    rows: tuple[str, ...]
    columns: tuple[str, ...]
    cells: tuple[tuple[tuple[int, float], ...], ...]


def confusion_view(title: str, rows: list[str], columns: list[str], counts: list[list[int]]) -> ConfusionView:
    """Shade each count by its share of the row so rare classes stay readable."""
    shaded = []
    for row in counts:
        total = sum(row) or 1
        shaded.append(tuple((int(c), round(c / total, 3)) for c in row))
    return ConfusionView(title, tuple(map(str, rows)), tuple(map(str, columns)), tuple(shaded))


def confusions_from_details(details: dict[str, Any]) -> list[ConfusionView]:
    """Views of a MER `details.confusion` block: one matrix, or one per emotion wheel."""
    block = details.get("confusion")
    if not isinstance(block, dict):
        return []
    named = {"": block} if "rows" in block else block
    return [confusion_view(name, m["rows"], m["columns"], m["counts"]) for name, m in named.items()
            if isinstance(m, dict) and {"rows", "columns", "counts"} <= set(m)]


def confusion_from_pairs(title: str, pairs: list[tuple[str, str | None]]) -> ConfusionView | None:
    """A truth × prediction matrix from (label, prediction) pairs; unparsed predictions go to "(none)"."""
    if not pairs:
        return None
    rows = sorted({t for t, _ in pairs})
    columns = sorted({p for _, p in pairs if p} | set(rows)) + ["(none)"]
    counts = [[0] * len(columns) for _ in rows]
    for truth, pred in pairs:
        counts[rows.index(truth)][columns.index(pred or "(none)")] += 1
    return confusion_view(title, rows, columns, counts)
