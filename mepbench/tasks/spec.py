"""Tasks declared in YAML: a dataset loader, Jinja2 prompt templates, labels, metrics and variants.

A spec file holds either a task (`task: name`) or a group (`group: name`, `tasks: [...]`).
Templates are looked up beside the spec, then in its `templates/` folder, then among the built-in
templates, so a user spec can reuse the shipped prompts.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import fields
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import jinja2
import yaml

from mepbench.masking import MaskMode, Variant, apply_mask
from mepbench.plugins import import_target
from mepbench.tasks.base import LoadResult, Task, TaskContext
from mepbench.tasks.loaders import get_loader
from mepbench.tasks.options import build_options, options_dict
from mepbench.types import GenerationParams, Message, Request, Sample, TextPart

TASK_KEYS = {"task", "description", "dataset", "prompt", "labels", "synonyms", "metrics", "primary_metric",
             "variants", "generation", "mask_mode", "tags", "class", "scoring", "options"}


def builtin_spec_dir() -> Path:
    """The folder of specs shipped with the package (the repository's top-level `tasks/`)."""
    return Path(str(files("mepbench._specs")))


class SpecError(ValueError):
    """A malformed task spec; the message names the file and key."""


INCLUDE_DEPTH = 8  # includes of includes, at most


def read_spec(path: Path) -> dict[str, Any]:
    """Parse a spec file with its `include:` files merged in, and validate the top-level keys."""
    spec = _with_includes(path, _parse(path), path.parent.resolve(), (path.resolve(),))
    if not ({"task", "group"} & spec.keys()):
        raise SpecError(f"{path}: a spec needs a 'task' or 'group' key")
    if "task" in spec:
        unknown = set(spec) - TASK_KEYS
        if unknown:
            raise SpecError(f"{path}: unknown keys {sorted(unknown)}; allowed: {sorted(TASK_KEYS)}")
        for key in ("dataset", "prompt", "labels"):
            if key not in spec:
                raise SpecError(f"{path}: task {spec['task']!r} is missing {key!r}")
    return spec


def _parse(path: Path) -> dict[str, Any]:
    """One YAML mapping from a file (parsed once per file version; the caller gets its own copy)."""
    return copy.deepcopy(_parse_version(path, path.stat().st_mtime_ns))


@lru_cache(maxsize=512)
def _parse_version(path: Path, mtime_ns: int) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: invalid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise SpecError(f"{path}: a spec file must hold a mapping of keys")
    return data


def _with_includes(path: Path, spec: dict[str, Any], root: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    """`spec` over the files its `include:` names (one name or a list, relative to `path`, merged in order, the spec's
    own keys last); every included file must lie inside `root`, the including spec's folder."""
    names = spec.pop("include", None)
    if names is None:
        return spec
    names = [names] if isinstance(names, str) else names
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise SpecError(f"{path}: include must be a file name or a list of file names")
    merged: dict[str, Any] = {}
    for name in names:
        target = (path.parent / name).resolve()
        if not target.is_relative_to(root):
            raise SpecError(f"{path}: include {name!r} lies outside the spec folder {root}")
        if target in chain:
            raise SpecError(f"{path}: include {name!r} includes itself ({' -> '.join(p.name for p in chain)})")
        if len(chain) > INCLUDE_DEPTH:
            raise SpecError(f"{path}: includes nest deeper than {INCLUDE_DEPTH}")
        if not target.is_file():
            raise SpecError(f"{path}: include {name!r} not found")
        merged = merge_specs(merged, _with_includes(target, _parse(target), root, (*chain, target)))
    return merge_specs(merged, spec)


def merge_specs(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` on top of `base`: mappings merge key by key, any other value (lists too) replaces."""
    out = dict(base)
    for key, value in over.items():
        out[key] = (merge_specs(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict)
                    else value)
    return out


class SpecTask(Task):
    """A task built from a YAML spec."""

    spec: dict[str, Any] = {}
    spec_path: Path = Path(".")

    def __init__(self, context: TaskContext, options: Any = None):
        super().__init__(context, options)
        spec, base = self.spec, self.spec_path.parent
        self.name = spec["task"]
        self.description = spec.get("description", "")
        self.labels = list(spec["labels"])
        self.synonyms = dict(spec.get("synonyms") or {})
        self.metrics = tuple(spec.get("metrics") or ("accuracy", "macro_f1"))
        self.primary_metric = spec.get("primary_metric", self.metrics[0])
        self.variants = tuple(Variant.parse(v) for v in spec.get("variants") or ["full"])
        self.mask_mode = MaskMode(spec.get("mask_mode", MaskMode.DROP.value))
        gen = spec.get("generation") or {}
        known = {f.name for f in fields(GenerationParams)}
        if set(gen) - known:
            raise SpecError(f"{self.spec_path}: unknown generation keys {sorted(set(gen) - known)}")
        self.params = GenerationParams(**gen)
        prompt = spec["prompt"]
        self.media = tuple(prompt.get("media", ("video", "audio")))
        search = [str(base), str(base / "templates"), str(builtin_spec_dir() / "templates")]
        env = jinja2.Environment(loader=jinja2.FileSystemLoader(search),
                                 undefined=jinja2.StrictUndefined, keep_trailing_newline=False)
        try:
            self._templates = {role: env.get_template(name) for role, name in prompt.items()
                               if isinstance(name, str) and name.endswith(".jinja")}
        except jinja2.TemplateNotFound as exc:
            raise SpecError(f"{self.spec_path}: prompt template not found: {exc}") from exc
        self._template_sources = {role: Path(t.filename or "").read_text(encoding="utf-8")
                                  for role, t in self._templates.items()}

    @classmethod
    def options_from(cls, values: dict[str, Any]) -> Any:
        """The spec's `options:` block, then `values` over it, checked against the class's `Options`."""
        given = cls.spec.get("options") or {}
        if not isinstance(given, dict):
            raise SpecError(f"{cls.spec_path}: options must be a mapping of option names to values")
        build_options(cls.Options, given, f"{cls.spec_path}: task {cls.name}")
        return build_options(cls.Options, {**given, **values}, f"task {cls.name}")

    def fingerprint(self) -> str:
        """Hash of the resolved spec (its keys in any order, wherever `include:` brought them from) and the template
        sources, so a prompt edit is a visible change."""
        blob = repr((super().fingerprint(), sorted(self._template_sources.items()),
                     json.dumps(self.spec, sort_keys=True, default=str), options_dict(self.options)))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def scoring_settings(self, defaults: dict[str, Any]) -> dict[str, Any]:
        """The spec's `scoring:` block over `defaults`; an unknown key is an error naming the file."""
        given = self.spec.get("scoring") or {}
        unknown = set(given) - set(defaults)
        if unknown:
            raise SpecError(f"{self.spec_path}: unknown scoring keys {sorted(unknown)}")
        return {**defaults, **given}

    def load(self, limit: int | None = None) -> LoadResult:
        """Call the spec's loader with its arguments."""
        dataset = dict(self.spec["dataset"])
        loader = get_loader(dataset.pop("loader"))
        return loader(self.context, limit=limit, **dataset)

    def render(self, role: str, **ctx: Any) -> str:
        """Render one prompt template; a missing variable is an error, not an empty string."""
        return self._templates[role].render(**ctx).strip()

    def build_request(self, sample: Sample, variant: Variant, mode: MaskMode) -> Request:
        """The main question: the `system` and `user` templates under the variant's mask."""
        return self.chat(sample, variant, mode, "system", "user", self.params)

    def chat(self, sample: Sample, variant: Variant, mode: MaskMode, system: str, user: str,
             params: GenerationParams, **extra: Any) -> Request:
        """Mask, then render a system and a user template; media parts come before the question text."""
        view = apply_mask(sample, variant, mode)
        ctx = {"subtitle": view.subtitle, "has_video": view.video is not None and "video" in self.media,
               "has_audio": view.audio is not None and "audio" in self.media,
               "labels": self.labels, "sample": sample, **extra}
        messages = []
        if system in self._templates:
            messages.append(Message("system", (TextPart(self.render(system, **ctx)),)))
        parts = [p for p in (view.video, view.audio) if p is not None and p.type in self.media]
        messages.append(Message("user", (*parts, TextPart(self.render(user, **ctx)))))
        return Request(tuple(messages), params, view.zero_features, sample.id, variant.name)


# The built-in task classes a spec's `class:` may name (anything else is `module:Class`), imported when first used.
BUILTIN_CLASSES = {"mep": "mepbench.tasks.mep:MEPTask", "mer": "mepbench.tasks.mer:MERTask",
                   "mme": "mepbench.tasks.mme:MMETask"}


def _task_class(name: str | None, path: Path) -> type[SpecTask]:
    if name is None:
        return SpecTask
    if not isinstance(name, str) or (":" not in name and name not in BUILTIN_CLASSES):
        raise SpecError(f"{path}: task class {name!r} is neither built in ({', '.join(sorted(BUILTIN_CLASSES))}) "
                        "nor module:Class")
    try:
        cls = import_target(BUILTIN_CLASSES.get(name, name))
    except (ImportError, AttributeError) as exc:
        raise SpecError(f"{path}: task class {name!r} not found ({exc})") from exc
    if not (isinstance(cls, type) and issubclass(cls, SpecTask)):
        raise SpecError(f"{path}: task class {name!r} is not a SpecTask subclass")
    return cls


def make_spec_task(spec: dict[str, Any], path: Path) -> type[SpecTask]:
    """A subclass of the spec's `class` (default SpecTask; a BUILTIN_CLASSES name or `module:Class`) bound to one
    spec."""
    base = _task_class(spec.get("class"), path)
    return type(f"{base.__name__}_{spec['task']}", (base,), {"spec": spec, "spec_path": path, "name": spec["task"],
                                                             "description": spec.get("description", "")})
