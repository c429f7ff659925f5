"""Task options: declared by a task as a typed dataclass, set in a spec's `options:` and by `--task-arg`, checked
before any model loads, recorded in results.json and part of the task fingerprint; and the `mepbench eval` flags
derived from `EvalConfig`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal

import pytest
import typer
import yaml
from helpers import copy_builtin_spec
from typer.testing import CliRunner

from mepbench.backends.scripted import ScriptedBackend
from mepbench.cli_flags import config_command, config_from_flags, config_parameters
from mepbench.config import EvalConfig
from mepbench.runner import run_eval
from mepbench.tasks import TaskContext, TaskRegistry
from mepbench.tasks.options import (
    TaskArgError,
    assign,
    build_options,
    option,
    parse_task_args,
)

MEPBENCH = str(Path(sys.executable).parent / "mepbench")

# The worked example of docs/design.md: a task option is one field in the task's own module.
EXAMPLE = '''
from dataclasses import dataclass
from typing import Any

from mepbench.tasks.options import option
from mepbench.tasks.spec import SpecTask


@dataclass(frozen=True)
class Options:
    min_words: int = option(0, "answers with fewer words are scored wrong")


class MinWordsTask(SpecTask):
    Options = Options

    def score(self, sample, response) -> dict[str, Any]:
        scored = super().score(sample, response)
        if len(response.text.split()) < self.options.min_words:
            scored.update(correct=False, pred=None)
        return scored
'''


@dataclass(frozen=True)
class Demo:
    mode: Literal["strict", "upstream"] = option("strict", "how")
    k: int = option(3, "count")
    rate: float = option(0.5, "share")
    on: bool = option(False, "switch")
    folder: Path | None = option(None, "where")


def test_values_are_coerced_to_the_declared_types_or_refused_with_the_closest_name():
    got = build_options(Demo, {"mode": "upstream", "k": "7", "rate": "1e-2", "on": "yes", "folder": "~/w"}, "task t")
    assert got == Demo("upstream", 7, 0.01, True, Path("~/w").expanduser())
    assert build_options(Demo, {"folder": "none"}, "task t").folder is None
    assert build_options(Demo, {"k": 4}, "spec").k == 4, "a YAML integer is an int"
    for values, message in (({"mode": "upstrem"}, "task t: option 'mode': 'upstrem' is not one of "
                                                   "['strict', 'upstream']; did you mean 'upstream'?"),
                            ({"k": "3.5"}, "task t: option 'k': expected int, got '3.5'"),
                            ({"k": True}, "expected int"),
                            ({"on": "maybe"}, "expected bool"),
                            ({"rat": "1"}, "task t: unknown option 'rat' (takes: mode, k, rate, on, folder); did you "
                                           "mean 'rate'?")):
        with pytest.raises(TaskArgError) as err:
            build_options(Demo, values, "task t")
        assert message in str(err.value)


def test_command_line_items_parse_into_addresses():
    assert parse_task_args(["mme-emotion.mode=upstream", "wheel_dir=/w", "mer2023.k=a=b"]) == {
        "mme-emotion": {"mode": "upstream"}, "*": {"wheel_dir": "/w"}, "mer2023": {"k": "a=b"}}
    for bad in ("mode", "=x", ".mode=x", "task.=x"):
        with pytest.raises(TaskArgError, match="TASK.key=value or key=value"):
            parse_task_args([bad])


def test_a_task_value_beats_its_group_which_beats_every_task():
    accepts = {"a": {"mode", "k"}, "b": {"mode"}, "c": set()}
    members = {"g": ["a", "b"]}
    got = assign(["g", "c"], members, accepts, {"*": {"mode": "x", "k": "1"}, "g": {"mode": "y"}, "a": {"mode": "z"}})
    assert got == {"a": {"mode": "z", "k": "1"}, "b": {"mode": "y"}, "c": {}}
    with pytest.raises(TaskArgError, match="'gg' is not a requested task or group .*; did you mean 'g'"):
        assign(["g"], members, accepts, {"gg": {"mode": "x"}})
    with pytest.raises(TaskArgError, match="no 'b' takes option 'k' \\(options: mode\\)"):
        assign(["g", "c"], members, accepts, {"b": {"k": "1"}})
    with pytest.raises(TaskArgError, match="no requested task takes option 'mod' .*did you mean 'mode'"):
        assign(["g", "c"], members, accepts, {"*": {"mod": "1"}})


def test_builtin_tasks_declare_their_options_and_fingerprint_them(tmp_path):
    registry = TaskRegistry()
    context = TaskContext(None, tmp_path)
    options = registry.task_options(["mme-emotion", "mer2023"], {"mme-emotion": {"mode": "upstream"},
                                                                 "*": {"wheel_dir": str(tmp_path)}})
    assert {options[n].mode for n in registry.resolve(["mme-emotion"])} == {"upstream"}
    assert options["mer2023"].wheel_dir == tmp_path and options["mer2023"].checkpoint_select == "best"
    strict, upstream = (registry.create("mme-emotion-ml-er", context, {"mode": m}) for m in ("strict", "upstream"))
    assert strict.fingerprint() != upstream.fingerprint() and strict.metrics != upstream.metrics
    with pytest.raises(TaskArgError, match="no requested task takes option 'mode'"):
        registry.task_options(["mep-synth"], {"*": {"mode": "upstream"}})


def _example_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spec_options: dict | None = None) -> Path:
    folder = copy_builtin_spec(tmp_path / "specs", "words", n=12)
    (folder / "min_words_example.py").write_text(EXAMPLE)
    monkeypatch.syspath_prepend(str(folder))
    spec_path = folder / "words.yaml"
    spec = yaml.safe_load(spec_path.read_text())
    spec["class"] = "min_words_example:MinWordsTask"
    if spec_options is not None:
        spec["options"] = spec_options
    spec_path.write_text(yaml.safe_dump(spec))
    return folder


def test_a_user_task_option_in_one_file_changes_its_scores_and_is_recorded(tmp_path, monkeypatch):
    folder = _example_folder(tmp_path, monkeypatch, {"min_words": 0})
    backend = ScriptedBackend(answer="<answer>neutral</answer>")

    def accuracy(task_args):
        config = EvalConfig(tasks=["words"], include_paths=[folder], cache_dir=tmp_path / "cache", bootstrap=20,
                            variants=["full"], task_args=task_args)
        out = run_eval(config, backend=backend)
        agg = out.tasks["words"]
        return agg["variants"]["full"]["metrics"]["accuracy"]["value"], agg

    plain, plain_agg = accuracy({})
    strict, strict_agg = accuracy({"words": {"min_words": "3"}})
    assert plain > 0 and strict == 0, "the option reaches the scorer"
    assert plain_agg["options"] == {"min_words": 0} and strict_agg["options"] == {"min_words": 3}
    assert plain_agg["fingerprint"] != strict_agg["fingerprint"]


def test_a_bad_spec_option_names_the_file(tmp_path, monkeypatch):
    folder = _example_folder(tmp_path, monkeypatch, {"min_word": 1})
    registry = TaskRegistry((folder,))
    with pytest.raises(TaskArgError, match=r"words.yaml: task words: unknown option 'min_word'.*did you mean"):
        registry.create("words", TaskContext(None, tmp_path))


def test_a_bad_task_arg_is_one_line_before_the_model_loads(tmp_path):
    done = subprocess.run([MEPBENCH, "eval", "--model", "no/such-model", "--tasks", "mme-emotion", "-T", "mode=lenent",
                           "--output-dir", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "'lenent' is not one of ['strict', 'upstream']" in done.stderr and "Traceback" not in done.stderr
    assert "no/such-model" not in done.stderr, "options are checked before the backend is built"
    assert not (tmp_path / "out").exists()


def test_tasks_lists_each_tasks_options():
    result = subprocess.run([MEPBENCH, "tasks"], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "COLUMNS": "400"})
    assert result.returncode == 0, result.stderr
    rows = [x for x in result.stdout.splitlines() if x.count("│") > 2]
    line = next(x for x in rows if x.split("│")[1].strip() == "mme-emotion-er-lab")
    assert "mode: strict|upstream = strict" in line
    group = next(x for x in rows if x.split("│")[1].strip() == "mer-unibench")
    assert "[mer2023, " in group, "group members are printed, not read as markup"


def test_every_config_field_is_a_flag_and_no_flags_give_the_default_config():
    names = [p.name for p in config_parameters(EvalConfig)]
    assert names == [f.name for f in fields(EvalConfig)]
    defaults = {p.name: p.default.default for p in config_parameters(EvalConfig)}
    assert config_from_flags(EvalConfig, defaults) == EvalConfig()


def test_flags_convert_into_the_config(tmp_path):
    seen: list[EvalConfig] = []
    probe = typer.Typer()
    probe.command("eval")(config_command(EvalConfig, seen.append, "probe"))
    probe.command("noop")(lambda: None)
    result = CliRunner().invoke(probe, ["eval", "--tasks", "a, b", "--model-arg", "dtype=bfloat16", "--model-arg",
                                        "n=8", "-T", "a.k=1", "--judge", "score=m@openai", "--no-cache",
                                        "--no-posters", "--mask-mode", "blank", "--include-path", str(tmp_path),
                                        "--variants", "full,mask:video"])
    assert result.exit_code == 0, result.output
    (config,) = seen
    assert config.tasks == ["a", "b"] and config.model_args == {"dtype": "bfloat16", "n": 8}
    assert config.task_args == {"a": {"k": "1"}} and config.judges == {"score": "m@openai"}
    assert not config.use_cache and not config.posters and config.mask_mode.value == "blank"
    assert config.include_paths == [tmp_path] and config.variants == ["full", "mask:video"]
    bad = CliRunner().invoke(probe, ["eval", "--model-arg", "novalue"])
    assert bad.exit_code == 2 and "--model-arg expects key=value" in bad.output


def test_results_record_the_task_args_as_given(tmp_path, monkeypatch):
    folder = _example_folder(tmp_path, monkeypatch)
    out = tmp_path / "run"
    done = subprocess.run([MEPBENCH, "eval", "--backend", "scripted", "--model", "s", "--tasks", "words",
                           "--include-path", str(folder), "-T", "words.min_words=2", "--variants", "full",
                           "--bootstrap", "10", "--output-dir", str(out), "--no-posters"],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(folder), "MEPBENCH_CACHE": str(tmp_path / "cache"),
                               "COLUMNS": "300"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "bootstrap intervals rest on fewer than 30 units (n = 12); read them as rough" in done.stdout
    saved = json.loads((out / "results.json").read_text())
    assert saved["config"]["task_args"] == {"words": {"min_words": "2"}}
    assert saved["tasks"]["words"]["options"] == {"min_words": 2}
