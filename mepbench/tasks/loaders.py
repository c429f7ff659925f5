"""Dataset loaders named by task specs: `manifest` (JSONL/CSV of clips), `mep-synth` (generated suite) and, listed
in BUILTIN_LOADERS and imported when first named, the benchmark loaders beside their tasks.

Tables are read with `datasets` (local files; media columns stay paths and are decoded by
`mepbench.media`). Every row is validated; a bad row becomes a SampleError naming file, sample, field.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from mepbench.plugins import find_plugin
from mepbench.tasks.base import LoadResult, TaskContext
from mepbench.types import Sample, SampleError

Loader = Callable[..., LoadResult]
# The one list of the built-in loaders (name → module:function), imported lazily; `register_loader` adds others at
# run time and the `mepbench.loaders` entry-point group adds installed ones.
BUILTIN_LOADERS: dict[str, str] = {
    "manifest": "mepbench.tasks.loaders:load_manifest",
    "mep-synth": "mepbench.tasks.loaders:load_mep_synth",
    "mep-bench": "mepbench.tasks.mep_bench:load_mep_bench",
    "affectgpt": "mepbench.tasks.mer:load_affectgpt",
    "mme-emotion": "mepbench.tasks.mme_data:load_mme_emotion",
}
_LOADERS: dict[str, Loader] = {}


def register_loader(name: str) -> Callable[[Loader], Loader]:
    """Decorator registering a loader under `name` (for loaders defined at run time, e.g. in a test)."""
    def wrap(fn: Loader) -> Loader:
        _LOADERS[name] = fn
        return fn
    return wrap


def get_loader(name: str) -> Loader:
    """A loader registered at run time, built in, or from the `mepbench.loaders` entry-point group."""
    if name in _LOADERS:
        return _LOADERS[name]
    return find_plugin(name, BUILTIN_LOADERS, "mepbench.loaders", "dataset loader", also=_LOADERS)


def _read_table(path: Path, cache_dir: Path) -> list[dict[str, Any]]:
    import datasets

    datasets.disable_progress_bars()
    kind = "csv" if path.suffix.lower() == ".csv" else "json"
    table = datasets.load_dataset(kind, data_files=str(path), split="train",
                                  cache_dir=str(cache_dir / "datasets"))
    return table.to_list()


def _row_to_sample(row: dict[str, Any], base: Path, source: Path, require: tuple[str, ...]) -> Sample:
    sid = str(row.get("id") or "")
    if not sid:
        raise SampleError("row has no id", path=str(source), field="id")
    paths = {k: str((base / row[k]).resolve()) if row.get(k) else None for k in ("video", "audio")}
    for key in require:
        value = row.get("subtitle") if key == "text" else paths.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            field = "subtitle" if key == "text" else key
            raise SampleError(f"empty or missing {field}", sample_id=sid, path=str(source), field=field)
    cues = _cue_lists(row, "cues", sid, source)
    return Sample(id=sid, video=paths["video"], audio=paths["audio"], subtitle=row.get("subtitle"),
                  label=row.get("label"), reasoning=row.get("reasoning"), cues=cues,
                  metadata=row.get("metadata") or {}, source=str(source), absent=_cue_lists(row, "absent", sid, source))


def _cue_lists(row: dict[str, Any], key: str, sid: str, source: Path) -> dict[str, list[str]]:
    """A `{modality: [phrase, ...]}` column; anything else is a SampleError naming the field."""
    value = row.get(key) or {}
    if not isinstance(value, dict) or not all(isinstance(v, (list, type(None))) and
                                              all(isinstance(c, str) for c in v or []) for v in value.values()):
        raise SampleError(f"{key} must map modalities to lists of phrases", sample_id=sid, path=str(source), field=key)
    return {k: list(v or []) for k, v in value.items()}


def load_manifest(context: TaskContext, path: str, require: tuple[str, ...] = (), limit: int | None = None,
                  **_: Any) -> LoadResult:
    """Clips listed in a JSONL/CSV file (columns id, video, audio, subtitle, label, reasoning, cues);
    relative media paths resolve against the manifest's folder."""
    source = Path(path)
    if not source.is_absolute():
        if context.data_root is None:
            raise FileNotFoundError(f"manifest {path!r} is relative and no --data-root was given")
        source = context.data_root / source
    if not source.is_file():
        raise FileNotFoundError(f"manifest not found: {source}")
    result = LoadResult()
    for i, row in enumerate(_read_table(source, context.cache_dir)):
        if limit is not None and len(result.samples) + len(result.errors) >= limit:
            break
        try:
            result.samples.append(_row_to_sample(row, source.parent, source, tuple(require)))
        except SampleError as err:
            if not err.sample_id:
                err = SampleError(f"row {i}: {err}", path=str(source), field=err.field)
            result.errors.append(err)
    return result


def mep_synth_root(cache_dir: Path, n: int, seed: int) -> Path:
    """Where the suite of `n` clips drawn with `seed` lives in the cache."""
    from mepbench.synth import SUITE_VERSION

    return Path(cache_dir) / "data" / f"mep-synth-v{SUITE_VERSION}-n{n}-s{seed}"


def load_mep_synth(context: TaskContext, n: int = 200, seed: int = 0, limit: int | None = None,
                   **_: Any) -> LoadResult:
    """The built-in synthetic suite, generated into the cache on first use (deterministic from seed)."""
    from mepbench.synth import generate_suite

    root = generate_suite(mep_synth_root(context.cache_dir, n, seed), n=n, seed=seed)
    return load_manifest(context, str(root / "manifest.jsonl"), require=("video", "audio", "text"), limit=limit)
