"""Training data: samples (mepbench `Sample`s with labels, reasoning and cues), their prompts, and the step order.

Sources: the generated `mep-synth` suite; the authors' RL records (`extracted_clues` JSONL, oppo-paper.md §3.2);
OV-MERD / MER-Caption+ style CSVs with a per-sample cue JSONL. Prompts are the harness's own templates.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mepbench.masking import FULL, MaskMode
from mepbench.scoring import PROBED, canonical_key, parse_openset
from mepbench.tasks import (
    SpecTask,
    TaskContext,
    builtin_spec_dir,
    load_mep_synth,
    make_spec_task,
    read_spec,
)
from mepbench.types import Request, Sample
from oppo_train.config import DataConfig

OPEN_PROMPT = {"system": "emotion_system.jinja", "user": "emotion_open_user.jinja",
               "probe_system": "probe_system.jinja", "probe_user": "probe_user.jinja",
               "describe_user": "describe_user.jinja", "media": ["video", "audio"]}


class DataError(ValueError):
    """A training data file or row that cannot be used; the message names the file and sample."""


def _cues(raw: Any) -> dict[str, list[str]]:
    """A cue record (`visual_clues` / `audio_clues` / `reasoning_emotions` or our keys) with canonical keys."""
    out: dict[str, list[str]] = {}
    for key, values in (raw or {}).items():
        values = [values] if isinstance(values, str) else list(values or [])
        out.setdefault(canonical_key(key), []).extend(v.strip() for v in values if isinstance(v, str) and v.strip())
    return out


def _media(value: str | None, root: Path | None, source: Path) -> str | None:
    """An absolute media path: as given when it exists, else under `root` (relative paths; or by file name, which
    remaps the authors' cluster paths), else relative to the data file."""
    if not value:
        return None
    path = Path(value)
    if path.is_absolute() and path.exists():
        return str(path)
    if root is not None:
        return str((root / (path.name if path.is_absolute() else path)).resolve())
    return str(path if path.is_absolute() else (source.parent / path).resolve())


def _check_media(sample: Sample, source: Path) -> None:
    for field in ("video", "audio"):
        value = getattr(sample, field)
        if value is None or not Path(value).is_file():
            raise DataError(f"{source}: sample {sample.id!r}: {field} file not found: {value}")


def load_records(path: str | Path, media_root: str | Path | None = None, require_media: bool = True,
                 limit: int | None = None) -> list[Sample]:
    """The authors' RL JSONL (`video`/`path`, `audio_path`, `subtitle`, `openset`, `extracted_clues`,
    `original_index`): label = the open-set list, cues keyed video / audio / emotion, id = the clip's file stem."""
    source, root = Path(path), Path(media_root) if media_root else None
    samples = []
    for line_no, line in enumerate(source.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        if limit is not None and len(samples) >= limit:
            break
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise DataError(f"{source}:{line_no}: not JSON ({exc})") from exc
        video = row.get("video") or row.get("path")
        if not video:
            raise DataError(f"{source}:{line_no}: record has no video path")
        sample = Sample(id=Path(video).stem, video=_media(video, root, source),
                        audio=_media(row.get("audio_path"), root, source), subtitle=row.get("subtitle"),
                        label=list(row.get("openset") or []), reasoning=row.get("reasoning"),
                        cues=_cues(row.get("extracted_clues")),
                        metadata={"original_index": row.get("original_index"), "line": line_no}, source=str(source))
        if require_media:
            _check_media(sample, source)
        samples.append(sample)
    return samples


def load_csv(config: DataConfig) -> list[Sample]:
    """One clip per CSV row (id, open-set label list string, optional reasoning and subtitle columns); media from the
    `video_template`/`audio_template` under `media_root`; cues from `cue_file` (JSONL rows with `name`/`id`)."""
    if not config.path:
        raise DataError("data.source=csv needs data.path")
    source = Path(config.path)
    table = pd.read_csv(source, dtype=str, keep_default_na=False)
    if config.id_column not in table.columns:
        raise DataError(f"{source}: no id column {config.id_column!r}; columns: {list(table.columns)}")
    cues: dict[str, dict[str, list[str]]] = {}
    if config.cue_file:
        for line in Path(config.cue_file).read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                key = str(row.get("name") or row.get("id"))
                cues[key] = _cues(row.get("extracted_clues", row.get("cues", row)))
    root = Path(config.media_root) if config.media_root else source.parent
    samples = []
    for row in table.to_dict("records"):
        if config.limit is not None and len(samples) >= config.limit:
            break
        sid = str(row[config.id_column])
        sample = Sample(id=sid, video=str(root / config.video_template.format(id=sid)),
                        audio=str(root / config.audio_template.format(id=sid)),
                        subtitle=row.get(config.subtitle_column) or None,
                        label=parse_openset(row.get(config.label_column, "")),
                        reasoning=row.get(config.reason_column) or None,
                        cues={k: v for k, v in cues.get(sid, {}).items() if k in ("video", "audio", "emotion")},
                        source=str(source))
        if config.require_media:
            _check_media(sample, source)
        samples.append(sample)
    return samples


def load_samples(config: DataConfig, cache_dir: Path) -> list[Sample]:
    """The training samples of `config`; mep-synth samples get their label as the emotion cue."""
    if config.source == "mep-synth":
        pool = config.pool_n if config.decided_share else config.n
        result = load_mep_synth(TaskContext(data_root=None, cache_dir=cache_dir), n=pool or config.n,
                                seed=config.seed, limit=None if config.decided_share else config.limit)
        if result.errors:
            raise DataError(f"mep-synth: {result.errors[0]}")
        samples = result.samples
        if config.decided_share:
            samples = select_decided(samples, config.n, config.decided_share)[:config.limit]
        return [dataclasses.replace(s, cues={**s.cues, "emotion": [s.label]}) for s in samples]
    if config.source == "records":
        if not config.path:
            raise DataError("data.source=records needs data.path")
        return load_records(config.path, config.media_root, config.require_media, config.limit)
    if config.source == "csv":
        return load_csv(config)
    raise DataError(f"unknown data.source {config.source!r}; choose mep-synth, records or csv")


def prompt_task(config: DataConfig, cache_dir: Path) -> SpecTask:
    """A spec task that renders training prompts: mep-synth's system/user templates and labels, or the open-vocabulary
    question for the other sources (the harness's templates, so training and evaluation prompts agree)."""
    base = builtin_spec_dir()
    if config.source == "mep-synth":
        spec = read_spec(base / "mep-synth.yaml")
        spec = {k: v for k, v in spec.items() if k not in ("class", "scoring")}
        spec["prompt"] = {**spec["prompt"], "describe_user": "describe_user.jinja"}
    else:
        spec = {"task": "oppo-openset", "dataset": {"loader": "manifest"}, "labels": [], "prompt": OPEN_PROMPT}
    cls = make_spec_task(spec, base / f"{spec['task']}.yaml")
    return cls(TaskContext(data_root=None, cache_dir=cache_dir))


def build_request(task: SpecTask, sample: Sample) -> Request:
    """The training prompt of a sample with every modality present: the task's main question, or for a probe row
    (`probe_rows`) the task's yes/no cue question."""
    probe = sample.metadata.get("probe")
    if probe:
        return task.chat(sample, FULL, MaskMode.ZERO_FEATURES, "probe_system", "probe_user", task.params,
                         modality=probe["modality"], cue=probe["cue"])
    if sample.metadata.get("describe"):
        return task.chat(sample, FULL, MaskMode.ZERO_FEATURES, "describe_system", "describe_user", task.params,
                         modality=sample.metadata["describe"])
    return task.build_request(sample, FULL, MaskMode.ZERO_FEATURES)


def probe_rows(samples: list[Sample], per_clip: int, seed: int) -> list[Sample]:
    """SFT rows that ask the harness's yes/no probe question about one cue with the full input: `per_clip` rows per
    clip on average, half about video and half about audio, and within each modality half "yes" (a cue the clip
    shows) and half "no" (a cue it does not show: its `absent` list where it has one, exact on mep-synth, else a cue
    of that modality seen on other clips). Clips are drawn for each answer among those that can give it, so a clip
    without a cue of a modality never has to be asked "yes". Masked inputs are never trained on, so the masked-probe
    accuracy (Acc@V / Acc@A) stays a held-out test of whether the model answers from what it perceives."""
    if per_clip <= 0 or not samples:
        return []
    rng = np.random.default_rng([seed, 7])
    rows: list[Sample] = []
    count = per_clip * len(samples)
    for index, modality in enumerate(p.value for p in PROBED):
        vocab = sorted({c for s in samples for c in s.cues.get(modality, [])})
        pools = {True: [], False: []}
        for sample in samples:
            present = list(sample.cues.get(modality, []))
            absent = list(sample.absent.get(modality) or [c for c in vocab if c not in present])
            pools[True] += [(sample, c) for c in present]
            pools[False] += [(sample, c) for c in absent]
        wanted = count // len(PROBED) + (index < count % len(PROBED))
        for k in range(wanted):
            answer = k % 2 == 0
            if not pools[answer]:
                continue
            sample, cue = pools[answer][int(rng.integers(len(pools[answer])))]
            rows.append(dataclasses.replace(sample, id=f"{sample.id}#probe-{modality}-{k}",
                                            reasoning="yes" if answer else "no",
                                            metadata={**sample.metadata, "probe": {"modality": modality, "cue": cue}}))
    return rows


def describe_rows(samples: list[Sample], share: float, seed: int) -> list[Sample]:
    """SFT rows that ask what the face (or the voice) shows, with every modality present, answered by the clip's
    reference sentence for that modality (`mepbench.synth.cues.describe`): for a `share` of the clips one row per
    modality. The optional face cues are known only by looking, so these rows ground the reasoning in the video."""
    from mepbench.synth import describe

    if share <= 0:
        return []
    rng = np.random.default_rng([seed, 11])
    rows = []
    for sample in samples:
        if rng.random() >= share:
            continue
        for modality in (m.value for m in PROBED):
            rows.append(dataclasses.replace(sample, id=f"{sample.id}#describe-{modality}",
                                            reasoning=describe(modality, sample.cues.get(modality, [])) + ".",
                                            metadata={**sample.metadata, "describe": modality}))
    return rows


def select_decided(samples: list[Sample], n: int, shares: dict[str, float]) -> list[Sample]:
    """`n` clips of a larger pool in which a `shares[m]` fraction is decided by modality m alone (mep-synth's
    `metadata.decided_by`), the rest the pool's other clips, each in pool order; an error when the pool is short."""
    chosen: list[Sample] = []
    for modality, share in sorted(shares.items()):
        want = round(share * n)
        picked = [s for s in samples if s.metadata.get("decided_by") == modality][:want]
        if len(picked) < want:
            raise DataError(f"data.decided_share: only {len(picked)} clips decided by {modality} alone in a pool of "
                            f"{len(samples)}, {want} wanted; raise data.pool_n")
        chosen += picked
    taken = {s.id for s in chosen}
    rest = [s for s in samples if s.id not in taken and s.metadata.get("decided_by") not in shares]
    if len(chosen) + len(rest) < n:
        raise DataError(f"data.decided_share: the pool of {len(samples)} clips has too few others; raise data.pool_n")
    keep = taken | {s.id for s in rest[:n - len(chosen)]}
    return [s for s in samples if s.id in keep]


def sft_target(sample: Sample) -> str:
    """The SFT answer: a probe row's yes/no or a describe row's sentence; the sample's reasoning when it already has
    the tags, else `<think>reasoning</think>` + `<answer>labels</answer>` (§5 stage 1)."""
    if sample.metadata.get("probe") or sample.metadata.get("describe"):
        return str(sample.reasoning)
    if sample.reasoning and "<answer>" in sample.reasoning:
        return sample.reasoning
    if not sample.reasoning:
        raise DataError(f"sample {sample.id!r} has no reasoning text for SFT")
    labels = [sample.label] if isinstance(sample.label, str) else list(sample.label or [])
    return f"<think>{sample.reasoning.strip()}</think><answer>{', '.join(labels)}</answer>"


def step_indices(n: int, step: int, per_step: int, seed: int) -> list[int]:
    """Dataset indices of global step `step`: consecutive slices of per-epoch permutations (seeded by seed, epoch), so
    the order depends only on the step and not on the process count or on resuming."""
    out = []
    for k in range(step * per_step, (step + 1) * per_step):
        epoch, pos = divmod(k, n)
        out.append(int(_permutation(n, seed, epoch)[pos]))
    return out


@functools.lru_cache(maxsize=4)
def _permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n)
