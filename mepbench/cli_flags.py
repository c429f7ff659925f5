"""Command-line options derived from a config dataclass whose fields carry a `mepbench.config.Flag`: one typer
option per field, typed as the field (or as the flag says), converted back into the dataclass on the way in."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import MISSING, fields
from typing import Any, get_type_hints

import typer
from rich.markup import escape

from mepbench.config import Flag


def _option(name: str, annotation: Any, default: Any, spec: Flag) -> inspect.Parameter:
    decls = spec.decls or (f"--{name.replace('_', '-')}",)
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation,
                             default=typer.Option(default, *decls, help=escape(spec.help)))


def config_parameters(cls: type) -> list[inspect.Parameter]:
    """One keyword parameter per flagged field of `cls`, with its typer option."""
    hints = get_type_hints(cls)
    params = []
    for f in fields(cls):
        spec = f.metadata.get("flag")
        if spec is None:
            continue
        default = spec.cli_default if spec.cli_default is not None else (
            f.default if f.default is not MISSING else None)
        params.append(_option(f.name, spec.cli_type or hints[f.name], default, spec))
    return params


def config_from_flags(cls: type, values: dict[str, Any]) -> Any:
    """An instance of `cls` from the typed command-line values; a conversion error is a usage error naming the
    option."""
    kwargs = {}
    for f in fields(cls):
        spec = f.metadata.get("flag")
        if spec is None or f.name not in values:
            continue
        value = values[f.name]
        try:
            kwargs[f.name] = spec.convert(value) if spec.convert else value
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint=(spec.decls or (f"--{f.name.replace('_', '-')}",))[0]) \
                from exc
    return cls(**kwargs)


def config_command(cls: type, run: Callable[[Any], None], doc: str) -> Callable[..., None]:
    """A typer command function whose options are the flags of `cls`; it builds the config and calls `run`."""
    def command(**values: Any) -> None:
        run(config_from_flags(cls, values))

    params = config_parameters(cls)
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = doc
    return command
