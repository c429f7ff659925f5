"""Task discovery: built-in specs, include folders, groups and the `mepbench.tasks` entry-point group."""

import sys
import textwrap

import pytest
import yaml

from helpers import copy_builtin_spec
from mepbench.masking import MaskMode, Variant
from mepbench.tasks import TaskContext, TaskRegistry
from mepbench.tasks.spec import SpecError
from mepbench.types import Sample


def test_builtin_mep_synth_spec_is_found_and_renders(tmp_path):
    registry = TaskRegistry()
    assert "mep-synth" in registry.tasks
    task = registry.create("mep-synth", TaskContext(None, tmp_path))
    assert [v.name for v in task.variants] == ["full", "mask:video", "mask:audio", "mask:text", "mask:video+audio"]
    sample = Sample(id="x", video="/v.mp4", audio="/a.wav", subtitle="I won!")
    full = task.build_request(sample, Variant(), MaskMode.DROP)
    user = full.messages[-1]
    assert [p.type for p in user.content] == ["video", "audio", "text"]
    assert "<Subtitle>I won!</Subtitle>" in user.text() and "happy, sad, angry" in user.text()
    no_text = task.build_request(sample, Variant.parse("mask:text"), MaskMode.DROP).messages[-1].text()
    assert "Subtitle" not in no_text
    blank_text = task.build_request(sample, Variant.parse("mask:text"), MaskMode.BLANK).messages[-1].text()
    assert "<Subtitle></Subtitle>" in blank_text


def test_groups_expand_in_order_without_repeats(tmp_path):
    specs = copy_builtin_spec(tmp_path, "t1", 2)
    copy_builtin_spec(specs, "t2", 2)
    (specs / "g.yaml").write_text(yaml.safe_dump({"group": "g", "tasks": ["t2", "t1"]}))
    registry = TaskRegistry((specs,))
    assert registry.resolve(["g", "t1", "mep-synth"]) == ["t2", "t1", "mep-synth"]
    with pytest.raises(KeyError, match="unknown task or group 'nope'"):
        registry.resolve(["nope"])


def test_duplicate_task_names_are_rejected(tmp_path):
    copy_builtin_spec(tmp_path, "mep-synth", 2)
    with pytest.raises(SpecError, match="clashes"):
        TaskRegistry((tmp_path,))


def test_entry_point_tasks_are_discovered(tmp_path, monkeypatch):
    (tmp_path / "my_plugin.py").write_text(textwrap.dedent("""
        from mepbench.tasks.base import LoadResult, Task
        class MyTask(Task):
            name = "my-plugin-task"
            description = "from an entry point"
            def load(self, limit=None):
                return LoadResult()
            def build_request(self, sample, variant, mode):
                raise NotImplementedError
    """))
    dist = tmp_path / "my_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[mepbench.tasks]\nmy-plugin-task = my_plugin:MyTask\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = TaskRegistry()
    assert registry.tasks["my-plugin-task"].description == "from an entry point"
    assert "my_plugin:MyTask" in registry.origins["my-plugin-task"]
    sys.modules.pop("my_plugin", None)


def test_missing_template_and_missing_keys_are_named(tmp_path):
    (tmp_path / "a.yaml").write_text(yaml.safe_dump({"task": "a", "dataset": {"loader": "manifest"},
                                                     "labels": ["x"], "prompt": {"user": "nope.jinja"}}))
    registry = TaskRegistry((tmp_path,))
    with pytest.raises(SpecError, match="a.yaml: prompt template not found: 'nope.jinja'"):
        registry.create("a", TaskContext(None, tmp_path))
    (tmp_path / "b.yaml").write_text(yaml.safe_dump({"task": "b", "labels": ["x"]}))
    with pytest.raises(SpecError, match="b.yaml: task 'b' is missing 'dataset'"):
        TaskRegistry((tmp_path,))


def test_a_task_class_must_be_built_in_or_module_colon_class(tmp_path):
    specs = copy_builtin_spec(tmp_path, "t", 2)
    spec = yaml.safe_load((specs / "t.yaml").read_text())
    (specs / "t.yaml").write_text(yaml.safe_dump({**spec, "class": "mep_bench"}))
    with pytest.raises(SpecError, match=r"t.yaml: task class 'mep_bench' is neither built in \(mep, mer, mme\) nor "
                                        "module:Class"):
        TaskRegistry((specs,))
