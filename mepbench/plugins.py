"""Finding a named plugin: a built-in table of `module:attr` targets imported when first named, then an installed
package's entry point. Backends, dataset loaders and task classes are all found this way."""

from __future__ import annotations

from collections.abc import Iterable
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any


def import_target(target: str) -> Any:
    """The object a `module:attr` string names (its module imported now)."""
    module, _, attr = target.partition(":")
    return getattr(import_module(module), attr)


def plugin_names(builtin: Iterable[str], group: str) -> list[str]:
    """The built-in names plus those of the entry-point `group`, sorted."""
    return sorted({*builtin, *(ep.name for ep in entry_points(group=group))})


def find_plugin(name: str, builtin: dict[str, str], group: str, kind: str, also: Iterable[str] = ()) -> Any:
    """The built-in `name`, else the entry point of `group` called `name`; a KeyError names the `kind` and every
    known name (`also`: names the caller resolves itself)."""
    if name in builtin:
        return import_target(builtin[name])
    installed = [ep for ep in entry_points(group=group) if ep.name == name]
    if not installed:
        raise KeyError(f"unknown {kind} {name!r}; known: {', '.join(plugin_names([*builtin, *also], group))}")
    return installed[0].load()
