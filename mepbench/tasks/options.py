"""Task options: typed settings a task class declares as a frozen dataclass (`Task.Options`), set in a spec's
`options:` block and on the command line as `--task-arg TASK.key=value` (TASK a task or a group) or `--task-arg
key=value` (every requested task that declares `key`). Options are checked against their declared types before
any model loads; a task option is one field in its task's module."""

from __future__ import annotations

import difflib
import types
from collections.abc import Mapping
from dataclasses import MISSING, Field, asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

ANY_TASK = "*"  # the address of `--task-arg key=value`: every requested task that declares `key`
TRUE, FALSE = {"true", "yes", "1", "on"}, {"false", "no", "0", "off"}


class TaskArgError(ValueError):
    """A task option that is unknown, addressed to an unknown task, or not of its declared type."""


def option(default: Any, help: str) -> Any:
    """A task option field: its default and a one-line help shown by `mepbench tasks`."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class NoOptions:
    """The options of a task that declares none."""


def parse_task_args(pairs: list[str]) -> dict[str, dict[str, str]]:
    """`TASK.key=value` / `key=value` items → address (a task or group name, or `*`) → key → the value as given."""
    out: dict[str, dict[str, str]] = {}
    for pair in pairs:
        left, sep, value = pair.partition("=")
        address, dot, key = left.strip().rpartition(".")
        if not sep or not key or (dot and not address):
            raise TaskArgError(f"--task-arg expects TASK.key=value or key=value, got {pair!r}")
        out.setdefault(address or ANY_TASK, {})[key] = value.strip()
    return out


def _closest(name: str, known: list[str]) -> str:
    near = difflib.get_close_matches(name, known, n=1)
    return f"; did you mean {near[0]!r}?" if near else ""


def _optional(annotation: Any) -> tuple[Any, bool]:
    """(the type without None, whether None is allowed)."""
    if get_origin(annotation) in (Union, types.UnionType):
        rest = [a for a in get_args(annotation) if a is not type(None)]
        if len(rest) == 1:
            return rest[0], len(rest) < len(get_args(annotation))
    return annotation, False


def coerce(value: Any, annotation: Any, where: str) -> Any:
    """`value` (command-line text or a YAML value) as `annotation`: str, int, float, bool, Path, a Literal of strings,
    or any of them `| None` (the text `none` or `null`)."""
    kind, nullable = _optional(annotation)
    if nullable and (value is None or (isinstance(value, str) and value.lower() in ("none", "null", ""))):
        return None
    if get_origin(kind) is Literal:
        allowed = [str(a) for a in get_args(kind)]
        if str(value) not in allowed:
            raise TaskArgError(f"{where}: {value!r} is not one of {allowed}{_closest(str(value), allowed)}")
        return str(value)
    if kind is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in TRUE | FALSE:
            return str(value).lower() in TRUE
    elif kind in (int, float):
        try:
            number = kind(value)
        except (TypeError, ValueError):
            number = None
        if number is not None and not isinstance(value, bool) and (kind is float or str(number) == str(value).strip()
                                                                    or isinstance(value, int)):
            return number
    elif kind is Path and isinstance(value, (str, Path)):
        return Path(value).expanduser()
    elif kind is str and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    name = getattr(kind, "__name__", str(kind))
    raise TaskArgError(f"{where}: expected {name}{' or none' if nullable else ''}, got {value!r}")


def build_options(cls: type, values: Mapping[str, Any], where: str) -> Any:
    """An instance of the options dataclass `cls` with `values` coerced to its field types; an unknown key or a bad
    value is an error naming `where` and the option."""
    known = {f.name: f for f in fields(cls)}
    hints = get_type_hints(cls)
    for key in values:
        if key not in known:
            takes = ", ".join(known) or "no options"
            raise TaskArgError(f"{where}: unknown option {key!r} (takes: {takes}){_closest(key, list(known))}")
    try:
        return cls(**{k: coerce(v, hints[k], f"{where}: option {k!r}") for k, v in values.items()})
    except TaskArgError:
        raise
    except (TypeError, ValueError) as exc:
        raise TaskArgError(f"{where}: {exc}") from exc


def describe_options(cls: type) -> list[tuple[str, str, Any, str]]:
    """(name, type, default, help) of every option `cls` declares, for listings."""
    hints = get_type_hints(cls)
    rows = []
    for f in fields(cls):
        default = f.default if f.default is not MISSING else None
        rows.append((f.name, _type_name(hints[f.name]), default, _help(f)))
    return rows


def _type_name(annotation: Any) -> str:
    kind, nullable = _optional(annotation)
    if get_origin(kind) is Literal:
        text = "|".join(str(a) for a in get_args(kind))
    else:
        text = getattr(kind, "__name__", str(kind))
    return f"{text} (or none)" if nullable else text


def _help(f: Field[Any]) -> str:
    return str(f.metadata.get("help", ""))


def options_dict(options: Any) -> dict[str, Any]:
    """The options as JSON-ready values (paths as text), for results.json."""
    if not is_dataclass(options):
        return {}
    return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()}


def declared(cls: type) -> set[str]:
    """The option names `cls` declares."""
    return {f.name for f in fields(cls)}


def assign(requested: list[str], members: Mapping[str, list[str]], accepts: Mapping[str, set[str]],
           task_args: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Which values each task to run receives: `*` values for every task that declares the key, then a group's values
    for its members (in the order requested), then a task's own; an address that is not requested, or a key that no
    addressed task declares, is an error."""
    out: dict[str, dict[str, Any]] = {name: {} for name in accepts}
    layers = [(ANY_TASK, list(accepts))] + [(name, members[name]) for name in requested if name in members]
    layers += [(name, [name]) for name in accepts]
    for address in task_args:
        if address != ANY_TASK and address not in members and address not in accepts:
            known = sorted({*members, *accepts})
            raise TaskArgError(f"--task-arg {address}.…: {address!r} is not a requested task or group (requested: "
                               f"{', '.join(requested)}){_closest(address, known)}")
    for address, targets in layers:
        for key, value in task_args.get(address, {}).items():
            takers = [t for t in targets if key in accepts[t]]
            if not takers:
                options = sorted(set().union(*(accepts[t] for t in targets)))
                raise TaskArgError(f"--task-arg {'' if address == ANY_TASK else address + '.'}{key}: no "
                                   f"{'requested task' if address == ANY_TASK else repr(address)} takes option "
                                   f"{key!r} (options: {', '.join(options) or 'none'})"
                                   f"{_closest(key, options)}")
            for t in takers:
                out[t][key] = value
    return out

