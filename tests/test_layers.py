"""Layering rules: what importing a layer must not drag in (checked on a fresh interpreter), and no import cycle
between modules of either package (checked on the source, function-level imports included)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest


def loaded_after(statement: str, prefixes: tuple[str, ...]) -> list[str]:
    """The modules starting with one of `prefixes` that `statement` leaves imported in a fresh interpreter."""
    code = (f"import sys; {statement}; "
            f"print('\\n'.join(m for m in sys.modules if m.startswith({prefixes!r})))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    return done.stdout.split()


def test_scoring_never_imports_the_synthetic_generator():
    loaded = loaded_after("import mepbench.scoring, mepbench.scoring.calibration",
                          ("mepbench.synth", "scipy.signal", "torch"))
    assert loaded == [], f"importing mepbench.scoring loads {loaded}"


def test_the_generator_reads_its_vocabulary_from_scoring():
    from mepbench.scoring import vocabulary
    from mepbench.synth import cues

    assert cues.VOCABULARY is vocabulary.VOCABULARY and cues.SUBTITLES is vocabulary.SUBTITLES
    assert set(vocabulary.SUBTITLES) == set(cues.EMOTIONS) - {"neutral"}


ROOT = Path(__file__).resolve().parents[1]


def module_files() -> dict[str, Path]:
    """Dotted name → file of every module of the two packages (a package is its `__init__`)."""
    out = {}
    for package in ("mepbench", "oppo_train"):
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def import_graph() -> dict[str, set[str]]:
    """Module → the modules of the two packages it imports anywhere in its body (function-level imports too)."""
    files = module_files()
    graph = {}
    for name, path in files.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                targets |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in files else node.module
                            for a in node.names}
            elif isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
        graph[name] = {t for t in targets if t in files and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (each holds an import cycle)."""
    order, low, stack, found, counter = {}, {}, [], [], iter(range(len(graph)))

    def visit(node: str) -> None:
        order[node] = low[node] = next(counter)
        stack.append(node)
        for target in graph[node]:
            if target not in order:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], order[target])
        if low[node] == order[node]:
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in order:
            visit(node)
    return found


def test_cycle_finder_finds_a_planted_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_of_either_package_is_part_of_an_import_cycle():
    assert cycles(import_graph()) == []


def test_every_builtin_loader_is_found_by_name_in_a_fresh_interpreter():
    from mepbench.tasks.loaders import BUILTIN_LOADERS

    code = ("from mepbench.tasks.loaders import BUILTIN_LOADERS, get_loader; "
            "print(' '.join(f'{n}={get_loader(n).__module__}:{get_loader(n).__name__}' for n in BUILTIN_LOADERS))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert done.stdout.split() == [f"{name}={target}" for name, target in BUILTIN_LOADERS.items()]


def test_builtin_loaders_and_task_classes_are_listed_in_one_place_each():
    registering = [name for name, path in module_files().items()
                   if name != "mepbench.tasks.loaders" and "register_loader(" in path.read_text(encoding="utf-8")]
    assert registering == []  # no built-in loader registers itself by import side effect
    from mepbench.tasks.spec import BUILTIN_CLASSES, SpecTask, _task_class

    for name in BUILTIN_CLASSES:
        assert issubclass(_task_class(name, Path("x.yaml")), SpecTask)
    assert _task_class("mepbench.tasks.mep:MEPTask", Path("x.yaml")) is _task_class("mep", Path("x.yaml"))


def test_backends_and_loaders_come_from_installed_entry_points_too(tmp_path, monkeypatch):
    (tmp_path / "my_plugins.py").write_text(
        "from mepbench.backends.scripted import ScriptedBackend\n"
        "class EchoBackend(ScriptedBackend):\n    name = 'echo'\n"
        "def load_nothing(context, limit=None, **_):\n    return 'nothing'\n")
    dist = tmp_path / "my_plugins-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-plugins\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[mepbench.backends]\necho = my_plugins:EchoBackend\n\n"
                                           "[mepbench.loaders]\nnothing = my_plugins:load_nothing\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from mepbench.backends import backend_names, create_backend
    from mepbench.tasks.loaders import get_loader

    try:
        assert create_backend("echo", "m", answer="hi").generate([]) == [] and "echo" in backend_names()
        assert get_loader("nothing")(None) == "nothing" and get_loader("manifest").__name__ == "load_manifest"
        with pytest.raises(KeyError, match=r"unknown backend 'nope'; known: echo, hf, openai, replay, scripted, vllm"):
            create_backend("nope", "m")
        with pytest.raises(KeyError, match=r"unknown dataset loader 'nope'; known: affectgpt, manifest, mep-bench, "
                                           r"mep-synth, mme-emotion, nothing"):
            get_loader("nope")
    finally:
        sys.modules.pop("my_plugins", None)


# What the trainer may import from mepbench: the top-level package and these subpackages, and only names in their
# `__all__` (the documented public API, docs/design.md "Public API").
PUBLIC = ("mepbench", "mepbench.backends", "mepbench.backends.adapters", "mepbench.masking", "mepbench.models",
          "mepbench.report", "mepbench.scoring", "mepbench.synth", "mepbench.tasks", "mepbench.types")


def trainer_imports() -> dict[tuple[str, str], list[str]]:
    """(mepbench module, name) → the oppo_train files importing it, function-level imports included."""
    out: dict[tuple[str, str], list[str]] = {}
    for path in sorted((ROOT / "oppo_train").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "mepbench":
                for alias in node.names:
                    out.setdefault((node.module, alias.name), []).append(path.name)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "mepbench":
                        out.setdefault((alias.name, "*"), []).append(path.name)
    return out


def test_the_trainer_imports_only_mepbench_s_public_api():
    import importlib

    imports = trainer_imports()
    outside = {f"{m}.{n}": files for (m, n), files in imports.items() if m not in PUBLIC or n == "*"}
    assert not outside, f"oppo_train imports mepbench internals: {outside}"
    unlisted = {f"{m}.{n}": files for (m, n), files in imports.items()
                if n not in getattr(importlib.import_module(m), "__all__", ())}
    assert not unlisted, f"oppo_train imports names missing from their module's __all__: {unlisted}"
    assert {m for m, _ in imports} <= set(PUBLIC) and len(imports) > 20, "the listing sees the trainer's imports"


@pytest.mark.parametrize("module", PUBLIC)
def test_every_public_name_resolves(module):
    import importlib

    mod = importlib.import_module(module)
    exported = getattr(mod, "__all__", None)
    assert exported, f"{module} declares no __all__"
    missing = [n for n in exported if not hasattr(mod, n)]
    assert not missing, f"{module}.__all__ names what it does not have: {missing}"
