"""Task discovery: built-in YAML specs, user spec folders, and the `mepbench.tasks` entry-point group."""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from mepbench.tasks.base import Task, TaskContext
from mepbench.tasks.options import assign, declared
from mepbench.tasks.spec import SpecError, builtin_spec_dir, make_spec_task, read_spec


@dataclass(frozen=True)
class Group:
    """A named set of tasks scored together (mean of their primary metrics on the full variant)."""

    name: str
    tasks: tuple[str, ...]
    description: str = ""


class TaskRegistry:
    """All tasks and groups known to this run, with where each came from."""

    def __init__(self, include_paths: tuple[str | os.PathLike, ...] = ()):
        self.tasks: dict[str, type[Task]] = {}
        self.groups: dict[str, Group] = {}
        self.origins: dict[str, str] = {}
        env_paths = [p for p in os.environ.get("MEPBENCH_TASKS_PATH", "").split(os.pathsep) if p]
        for folder in (builtin_spec_dir(), *map(Path, env_paths), *map(Path, include_paths)):
            self._add_folder(folder)
        for ep in entry_points(group="mepbench.tasks"):
            self._add(ep.name, ep.load(), f"entry point {ep.value}")

    def _add(self, name: str, task: type[Task], origin: str) -> None:
        if name in self.tasks or name in self.groups:
            raise SpecError(f"task {name!r} from {origin} clashes with one from {self.origins[name]}")
        self.tasks[name] = task
        self.origins[name] = origin

    def _add_folder(self, folder: Path) -> None:
        if not folder.is_dir():
            raise SpecError(f"task folder not found: {folder}")
        for path in sorted(folder.glob("*.yaml")):
            spec = read_spec(path)
            if "group" in spec:
                self.groups[spec["group"]] = Group(spec["group"], tuple(spec.get("tasks") or ()),
                                                   spec.get("description", ""))
                self.origins[spec["group"]] = str(path)
            else:
                self._add(spec["task"], make_spec_task(spec, path), str(path))

    def resolve(self, names: list[str]) -> list[str]:
        """Task names with groups expanded, in order, without repeats; unknown names are an error."""
        out: list[str] = []
        for name in names:
            if name in self.groups:
                members = self.resolve(list(self.groups[name].tasks))
            elif name in self.tasks:
                members = [name]
            else:
                raise KeyError(f"unknown task or group {name!r}; run `mepbench tasks` to list them")
            out.extend(m for m in members if m not in out)
        return out

    def create(self, name: str, context: TaskContext, options: Any = None) -> Task:
        """Instantiate a task with its options: an instance from `task_options`, a mapping of values over the
        defaults, or None for the defaults."""
        cls = self.tasks[name]
        return cls(context, options if isinstance(options, cls.Options) else cls.options_from(options or {}))

    def members(self, names: list[str]) -> dict[str, list[str]]:
        """Each group among `names` → the tasks it runs (nested groups expanded)."""
        return {name: self.resolve([name]) for name in names if name in self.groups}

    def task_options(self, names: list[str], task_args: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """Every task `names` runs → its options from `task_args` (address → key → value; see
        `mepbench.tasks.options.assign`), checked before any task is built."""
        resolved = self.resolve(names)
        accepts = {n: declared(self.tasks[n].Options) for n in resolved}
        values = assign(names, self.members(names), accepts, task_args)
        return {n: self.tasks[n].options_from(values[n]) for n in resolved}
