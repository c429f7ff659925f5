"""`include:` in task specs: shared settings merged under a spec's own keys, re-read when the included file changes,
never read from outside the spec folder; the shipped MER-UniBench and MME-Emotion specs are built this way."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from helpers import copy_builtin_spec
from mepbench.tasks import TaskContext, TaskRegistry
from mepbench.tasks.spec import SpecError, builtin_spec_dir, merge_specs, read_spec

BASE = {"labels": ["happy", "sad"], "variants": ["full", "mask:video"], "generation": {"max_new_tokens": 64},
        "prompt": {"user": "emotion_user.jinja"}, "dataset": {"loader": "mep-synth", "n": 4}}


def write(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_merge_is_deep_for_mappings_and_replaces_everything_else():
    merged = merge_specs({"a": {"x": 1, "y": [1, 2]}, "b": [1], "c": 1}, {"a": {"y": [3]}, "b": [2], "d": 4})
    assert merged == {"a": {"x": 1, "y": [3]}, "b": [2], "c": 1, "d": 4}


def test_a_spec_gets_the_included_settings_under_its_own(tmp_path):
    write(tmp_path / "includes" / "base.yaml", BASE)
    spec = read_spec(write(tmp_path / "t.yaml", {"task": "t", "include": "includes/base.yaml",
                                                 "dataset": {"seed": 3}, "variants": ["full"]}))
    assert spec == {**BASE, "task": "t", "dataset": {"loader": "mep-synth", "n": 4, "seed": 3}, "variants": ["full"]}
    write(tmp_path / "includes" / "more.yaml", {"include": "base.yaml", "generation": {"temperature": 0.5}})
    spec = read_spec(write(tmp_path / "u.yaml", {"task": "u", "include": ["includes/more.yaml"]}))
    assert spec["generation"] == {"max_new_tokens": 64, "temperature": 0.5} and spec["labels"] == ["happy", "sad"]


def test_an_edited_include_is_read_again(tmp_path):
    base = write(tmp_path / "includes" / "base.yaml", BASE)
    spec = write(tmp_path / "t.yaml", {"task": "t", "include": "includes/base.yaml"})
    assert read_spec(spec)["labels"] == ["happy", "sad"]
    write(base, {**BASE, "labels": ["calm"]})
    stat = base.stat()
    os.utime(base, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # a new version, however fast the disk
    assert read_spec(spec)["labels"] == ["calm"]


def test_a_spec_with_an_include_is_the_same_task_as_the_spec_written_out(tmp_path):
    flat = copy_builtin_spec(tmp_path / "flat", "t", n=4)
    written = yaml.safe_load((flat / "t.yaml").read_text())
    shared = {k: v for k, v in written.items() if k not in ("task", "dataset")}
    write(tmp_path / "inc" / "includes" / "shared.yaml", {**shared, "dataset": {"loader": written["dataset"]["loader"]}})
    write(tmp_path / "inc" / "t.yaml", {"task": "t", "include": "includes/shared.yaml",
                                        "dataset": {k: v for k, v in written["dataset"].items() if k != "loader"}})
    context = TaskContext(None, tmp_path / "cache")
    one, other = (TaskRegistry((tmp_path / d,)).create("t", context) for d in ("flat", "inc"))
    assert one.spec == other.spec and one.fingerprint() == other.fingerprint()


@pytest.mark.parametrize(("include", "message"), [
    ("../outside.yaml", "lies outside the spec folder"),
    ("/etc/hostname", "lies outside the spec folder"),
    ("includes/link.yaml", "lies outside the spec folder"),
    ("includes/missing.yaml", "include 'includes/missing.yaml' not found"),
    ("t.yaml", "includes itself"),
    (["includes/list.yaml"], "must hold a mapping"),
    (7, "must be a file name or a list of file names"),
])
def test_bad_includes_are_refused_naming_the_spec(tmp_path, include, message):
    folder = tmp_path / "specs"
    write(tmp_path / "outside.yaml", BASE)
    (folder / "includes").mkdir(parents=True)
    os.symlink(tmp_path / "outside.yaml", folder / "includes" / "link.yaml")
    (folder / "includes" / "list.yaml").write_text("- a\n- b\n")
    spec = write(folder / "t.yaml", {"task": "t", "include": include, **BASE})
    with pytest.raises(SpecError, match=message) as caught:
        read_spec(spec)
    assert str(caught.value).startswith(str(spec if "mapping" not in message else folder / "includes" / "list.yaml"))


def test_the_shipped_multi_dataset_specs_share_their_settings_through_includes():
    root = builtin_spec_dir()
    assert {p.name for p in (root / "includes").glob("*.yaml")} == {"mer-unibench.yaml", "mme-emotion.yaml"}
    mer = [read_spec(p) for p in root.glob("*.yaml") if "include: includes/mer-unibench.yaml" in p.read_text()]
    mme = [read_spec(p) for p in root.glob("*.yaml") if "include: includes/mme-emotion.yaml" in p.read_text()]
    assert len(mer) == 9 and len(mme) == 8
    for spec in mer:
        assert spec["class"] == "mer" and spec["dataset"]["loader"] == "affectgpt" and spec["dataset"]["name"]
        assert spec["variants"] == ["full", "mask:video", "mask:audio", "mask:text"]
    for spec in mme:
        assert spec["class"] == "mme" and spec["dataset"]["loader"] == "mme-emotion" and spec["dataset"]["task"]
        assert spec["scoring"]["question"] and spec["scoring"]["judge_frames"] == 10
    assert len({s["scoring"]["question"] for s in mme}) == 6
