"""The MER-UniBench emotion-wheel mapping, read from the official AffectGPT files (benchmarks.md §1.3).

A label goes surface form → base word(s) (`format.csv`) → wheel word(s) (`synonym.xlsx`, 8 runs merged)
→ level-1 sector of wheel k (`wheelK.xlsx`). Quirks of upstream `my_affectgpt/evaluation/wheel.py`
reproduced on purpose, because "cleaning" them shifts published scores:

- alphabetical-first rule: of all wheel words reachable from a label, the alphabetically first one that is
  in wheel k decides the sector (so *fear* → via *fearless* → *brave*/*courageous* → a positive sector in
  wheels 2–5);
- a word listed under two level-1 sectors of a wheel belongs to the one read last (wheel 2 *overwhelmed* → bad);
- `format.csv` forms are not lower-cased (an upper-case form can never match a lower-cased label);
- labels outside the 7,386 surface forms, and those with no wheel word in wheel k, are dropped;
- *neutral* is in no wheel and no synonym list, so it maps to nothing.

The files are never shipped with mepbench: users pass the folder (`--wheel-dir`).
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

N_WHEELS = 5
SYNONYM_RUNS = 8
WHEEL_FILES = tuple(f"wheel{k}.xlsx" for k in range(1, N_WHEELS + 1))
SYNONYM_FILE = "synonym.xlsx"
FORMAT_FILE = "format.csv"
REQUIRED_FILES = (*WHEEL_FILES, SYNONYM_FILE, FORMAT_FILE)
WHEEL_SOURCE = ("the AffectGPT repository (https://github.com/zeroQiaoba/AffectGPT, folder AffectGPT/emotion_wheel/: "
                "wheel1..5.xlsx, synonym.xlsx, format.csv)")

_LIST_SPLIT = re.compile(r"""['",]""")
_MEMO_LIMIT = 200_000


def split_label_list(text: object) -> list[str]:
    """Upstream `string_to_list`: strip, drop one leading '[' and one trailing ']', split on quotes and commas,
    strip items and drop empty ones; None/NaN/'' give []. Case is kept (callers lower-case where upstream does)."""
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return []
    value = str(text).strip().removeprefix("[").removesuffix("]")
    return [item.strip() for item in _LIST_SPLIT.split(value) if item.strip()]


@dataclass(frozen=True, eq=False)
class EmotionWheels:
    """The precomputed mapping: lower-cased surface form → its level-1 sector in each of the 5 wheels (or None),
    plus the parsed parts (per-wheel word → sector maps, merged synonym map) for inspection."""

    folder: Path
    table: dict[str, tuple[str | None, ...]]
    sectors: tuple[tuple[str, ...], ...]
    level1_maps: tuple[dict[str, str], ...]
    synonyms: dict[str, frozenset[str]]
    n_wheel_words: int
    n_synonym_keys: int
    n_surface_forms: int
    _memo: dict[str, tuple[frozenset[str], ...]] = field(default_factory=dict, compare=False, repr=False)

    def map_word(self, word: str, wheel: int) -> str | None:
        """Level-1 sector of `word` (lower-cased, stripped) in wheel `wheel` (1..5); None if dropped."""
        entry = self.table.get(word.lower().strip())
        return entry[wheel - 1] if entry else None

    def map_labels(self, labels: Iterable[str], wheel: int) -> frozenset[str]:
        """The set of sectors a label list maps to in wheel `wheel` (1..5); dropped labels vanish."""
        out = set()
        for label in labels:
            entry = self.table.get(label.lower().strip())
            if entry and entry[wheel - 1] is not None:
                out.add(entry[wheel - 1])
        return frozenset(out)

    def map_all(self, labels: Iterable[str]) -> tuple[frozenset[str], ...]:
        """`map_labels` for all 5 wheels at once (one dictionary lookup per label)."""
        found: list[set[str]] = [set() for _ in range(N_WHEELS)]
        for label in labels:
            entry = self.table.get(label.lower().strip())
            if entry:
                for k, sector in enumerate(entry):
                    if sector is not None:
                        found[k].add(sector)
        return tuple(frozenset(s) for s in found)

    def map_text(self, text: str) -> tuple[frozenset[str], ...]:
        """`map_all` of an extracted list string ("[calm, happy]", words lower-cased as upstream), memoised per
        string because checkpoints repeat the same extractions."""
        hit = self._memo.get(text)
        if hit is None:
            if len(self._memo) > _MEMO_LIMIT:
                self._memo.clear()
            hit = self._memo[text] = self.map_all(split_label_list(text))
        return hit


def _require(folder: Path) -> None:
    if not folder.is_dir():
        raise FileNotFoundError(f"emotion-wheel folder not found: {folder}. mepbench does not ship these files; "
                                f"download them from {WHEEL_SOURCE} and pass the folder with --wheel-dir.")
    for name in REQUIRED_FILES:
        if not (folder / name).is_file():
            raise FileNotFoundError(f"emotion-wheel file missing: {folder / name}. mepbench does not ship these "
                                    f"files; download them from {WHEEL_SOURCE} and pass the folder with --wheel-dir.")


def _xlsx_rows(path: Path, columns: tuple[str, ...]) -> list[tuple[object, ...]]:
    """The named columns of the first sheet, one tuple per data row (header row located by name)."""
    try:
        import openpyxl
    except ImportError as exc:
        raise ImportError("reading the emotion-wheel .xlsx files needs openpyxl: pip install openpyxl") from exc
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
        rows = list(book.worksheets[0].iter_rows(values_only=True))
        book.close()
    except Exception as exc:
        raise ValueError(f"{path}: not a readable .xlsx file ({exc})") from exc
    header = [str(c).strip() if c is not None else "" for c in (rows[0] if rows else ())]
    missing = [c for c in columns if c not in header]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; found {header}")
    index = [header.index(c) for c in columns]
    return [tuple(row[i] if i < len(row) else None for i in index) for row in rows[1:]]


def _read_wheel(path: Path) -> dict[str, dict[str, list[str]]]:
    """level1 → level2 → [level3], blank cells inheriting from the row above, values lower-cased and stripped,
    groups kept in first-appearance order (upstream `read_wheel_to_map`)."""
    tree: dict[str, dict[str, list[str]]] = {}
    current = ["", "", ""]
    for row in _xlsx_rows(path, ("level1", "level2", "level3")):
        if all(cell is None for cell in row):
            continue
        for i, cell in enumerate(row):
            if cell is not None:
                current[i] = str(cell)
        l1, l2, l3 = (c.lower().strip() for c in current)
        tree.setdefault(l1, {}).setdefault(l2, []).append(l3)
    return tree


def _level1_map(tree: dict[str, dict[str, list[str]]]) -> dict[str, str]:
    """Every word of the wheel → its level-1 sector; a word under two sectors keeps the later one (upstream order)."""
    mapping: dict[str, str] = {}
    for l1, children in tree.items():
        mapping[l1] = l1
        for l2, leaves in children.items():
            mapping[l2] = l1
            for l3 in leaves:
                mapping[l3] = l1
    return mapping


def _read_synonyms(path: Path) -> dict[str, set[str]]:
    """Synonym → wheel words, the union of the 8 GPT runs; every wheel word also maps to itself."""
    columns = tuple(c for k in range(1, SYNONYM_RUNS + 1) for c in (f"word_run{k}", f"synonym_run{k}"))
    synonyms: dict[str, set[str]] = {}
    for row in _xlsx_rows(path, columns):
        for k in range(SYNONYM_RUNS):
            word, cell = row[2 * k], row[2 * k + 1]
            if word is None:
                continue
            raw = str(word).strip().lower()
            synonyms.setdefault(raw, set()).add(raw)
            for synonym in split_label_list(cell):
                synonyms.setdefault(synonym.lower(), set()).add(raw)
    return synonyms


def _read_formats(path: Path) -> dict[str, list[str]]:
    """Surface form → base words (`name` column); each base also maps to itself. Forms are not lower-cased."""
    formats: dict[str, list[str]] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not {"name", "format"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: expected columns 'name' and 'format'; found {reader.fieldnames}")
        for row in reader:
            base = row["name"]
            for form in split_label_list(row["format"]):
                formats.setdefault(form, []).append(base)
            formats.setdefault(base, []).append(base)
    return formats


def _build(folder: Path) -> EmotionWheels:
    """Precompute every surface form's sector per wheel. A base word missing from the synonym map (upstream would
    raise KeyError; never the case in the published files) contributes no wheel word."""
    _require(folder)
    trees = [_read_wheel(folder / name) for name in WHEEL_FILES]
    wheel_maps = [_level1_map(tree) for tree in trees]
    synonyms = _read_synonyms(folder / SYNONYM_FILE)
    formats = _read_formats(folder / FORMAT_FILE)
    table: dict[str, tuple[str | None, ...]] = {}
    for form, bases in formats.items():
        candidates = sorted({w for base in bases for w in synonyms.get(base, ())})
        table[form] = tuple(next((m[w] for w in candidates if w in m), None) for m in wheel_maps)
    wheel_words = set().union(*(m.keys() for m in wheel_maps))
    return EmotionWheels(folder=folder, table=table, sectors=tuple(tuple(tree) for tree in trees),
                         level1_maps=tuple(wheel_maps), synonyms={k: frozenset(v) for k, v in synonyms.items()},
                         n_wheel_words=len(wheel_words), n_synonym_keys=len(synonyms), n_surface_forms=len(formats))


@lru_cache(maxsize=8)
def _cached(folder: str, stamp: tuple[tuple[int, int], ...]) -> EmotionWheels:
    return _build(Path(folder))


def load_wheels(wheel_dir: str | Path) -> EmotionWheels:
    """Load (once per folder and file version) the wheel mapping from a folder holding AffectGPT's
    `emotion_wheel/` files; a missing folder or file raises FileNotFoundError saying where to get them."""
    folder = Path(wheel_dir).expanduser().resolve()
    _require(folder)
    stamp = tuple((s.st_mtime_ns, s.st_size) for s in ((folder / n).stat() for n in REQUIRED_FILES))
    return _cached(str(folder), stamp)
