"""Shared fixtures: the released-data fixtures folder, a session cache dir, a scripted backend (the package's), and
the strict-JSON check of every results.json a test writes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from mepbench.backends.scripted import ScriptedBackend

SHARED = Path(os.environ.get("MEPBENCH_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def unavailable(message: str, require_env: str) -> None:
    """Skip with `message`, or fail when `require_env`=1 (CI sets it so a missing resource is never a skip)."""
    if os.environ.get(require_env) == "1":
        pytest.fail(f"{require_env}=1 but {message}")
    pytest.skip(message)


def shared_fixture(*parts: str) -> Path:
    """Path under ../shared/fixtures; skips (or fails when MEPBENCH_REQUIRE_FIXTURES=1) if absent."""
    path = SHARED.joinpath("fixtures", *parts)
    if not path.exists():
        unavailable(f"released-data fixture not available: {path}", "MEPBENCH_REQUIRE_FIXTURES")
    return path


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder shared by the session (tiny-omni and mep-synth are built once into it)."""
    return tmp_path_factory.mktemp("mepbench-cache")


@pytest.fixture
def scripted() -> ScriptedBackend:
    """A fresh scripted backend."""
    return ScriptedBackend()


def _reject_constant(token: str) -> None:
    raise ValueError(f"bare {token} is not JSON")


def load_strict_json(text: str) -> Any:
    """`json.loads` that refuses bare NaN and ±Infinity, as a strict JSON reader does."""
    import json

    return json.loads(text, parse_constant=_reject_constant)


@pytest.fixture(scope="session", autouse=True)
def results_files_are_strict_json(tmp_path_factory: pytest.TempPathFactory):
    """After the session, every results.json any test wrote under pytest's temporary folders must load with a strict
    JSON reader (bare NaN or Infinity is not JSON) and, when it is a run's (schema 3), match the shipped JSON Schema;
    a malformed file a test wrote on purpose is not this check's."""
    yield
    import jsonschema

    from mepbench.records import SCHEMA_VERSION, results_schema

    validator = jsonschema.Draft202012Validator(results_schema())
    for path in sorted(tmp_path_factory.getbasetemp().rglob("results.json")):
        try:
            doc = load_strict_json(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            if "is not JSON" in str(exc):
                pytest.fail(f"{path} is not strict JSON: {exc}")
            continue
        if isinstance(doc, dict) and doc.get("schema_version") == SCHEMA_VERSION:
            errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
            if errors:
                where = "/".join(map(str, errors[0].absolute_path))
                pytest.fail(f"{path} does not match the results schema at /{where}: {errors[0].message}")
