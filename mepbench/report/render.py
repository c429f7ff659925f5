"""The Jinja2 environment of the report: package templates, autoescape on for every template, strict
undefined, and the inline stylesheet and script (package files, the only markup not escaped) with a
Content-Security-Policy that lets only that script run."""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from mepbench.report.cells import fmt, label


def _asset(name: str) -> str:
    return files("mepbench.report").joinpath("templates", name).read_text(encoding="utf-8")


def content_security_policy(script: str) -> str:
    """No network, no plugins, no inline script but ours (by hash); images and media from files or data URIs."""
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()
    return ("default-src 'none'; "
            f"script-src 'sha256-{digest}'; style-src 'unsafe-inline'; img-src 'self' data: file:; "
            "media-src 'self' file:; base-uri 'none'; form-action 'none'")


@lru_cache(maxsize=1)
def environment() -> Environment:
    """The shared environment (autoescape cannot be turned off per call)."""
    env = Environment(loader=PackageLoader("mepbench.report", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    script = _asset("report.js")
    env.globals.update(style=Markup(_asset("report.css")), script=Markup(script),
                       csp=content_security_policy(script))
    env.filters.update(num=fmt, label=label)
    return env


def write_page(path: Path, template: str, **context: Any) -> int:
    """Render `template` into `path`; returns the bytes written."""
    data = environment().get_template(template).render(**context).encode("utf-8")
    path.write_bytes(data)
    return len(data)
