"""Merging mini-reproduction leaderboards written by separate invocations: the union of seeds must give the summary
and contrasts one invocation over all of them gives, and boards that do not belong together are refused."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from oppo_train.cli import main as cli_main
from oppo_train.repro_merge import MergeError, merge_boards
from oppo_train.repro_table import write_board

COMMITTED = Path(__file__).parents[1] / "leaderboards" / "mini-repro"
CONFIG = {"seeds": [0], "train_n": 1000, "work_dir": "w", "out_dir": "o", "primary": ["accuracy", "grounded_a"],
          "contrasts": [["oppo", "baseline"]], "alpha": 0.05}


def seed_rows(acc_oppo: float, acc_base: float, grounded: float) -> dict:
    def run(acc, g):
        return {"values": {"accuracy": acc, "grounded_a": g}, "ci": {"accuracy": [acc - 0.05, acc + 0.05]}}
    return {"baseline": run(acc_base, 0.1), "oppo": run(acc_oppo, grounded)}


SEEDS = {0: seed_rows(0.60, 0.50, 0.30), 1: seed_rows(0.70, 0.62, 0.45), 2: seed_rows(0.55, 0.50, 0.20),
         3: seed_rows(0.66, 0.60, 0.35)}


def board(folder: Path, seeds: list[int], **config) -> Path:
    """A leaderboard of the given seeds, with a report folder per seed, as one `repro` invocation writes it."""
    meta = {"config": {**CONFIG, "seeds": seeds, "work_dir": str(folder), **config}, "eval_suite": {"n": 200, "seed": 0},
            "leaderboard_written_at": {"commit": "abc", "dirty": False}, "wall_seconds": 10.0 * len(seeds),
            "stages": {"seconds": {f"seed-{s}/sft": 60.0 + s for s in seeds},
                       "commits": {f"seed-{s}/sft": {"commit": "abc", "dirty": False} for s in seeds}}}
    write_board(folder, {s: SEEDS[s] for s in seeds}, meta)
    for s in seeds:
        (folder / "site" / f"seed-{s}").mkdir(parents=True)
        (folder / "site" / f"seed-{s}" / "index.html").write_text(f"report of seed {s}")
    return folder


def results(folder: Path) -> dict:
    return json.loads((folder / "results.json").read_text())


def test_merged_seeds_give_what_one_run_over_all_of_them_gives(tmp_path):
    merged = merge_boards([board(tmp_path / "a", [0, 2]), board(tmp_path / "b", [3, 1])], tmp_path / "all")
    whole = results(board(tmp_path / "whole", [0, 1, 2, 3]))
    data = results(merged)
    assert data["summary"] == whole["summary"] and data["contrasts"] == whole["contrasts"]
    assert list(data["per_seed"]) == ["0", "1", "2", "3"] and data["summary"]["oppo"]["accuracy"]["n_seeds"] == 4
    diffs = data["contrasts"][0]["diffs"]
    assert diffs == pytest.approx([0.10, 0.08, 0.05, 0.06])  # oppo − baseline accuracy, seeds in order
    meta = data["metadata"]
    assert meta["config"]["seeds"] == [0, 1, 2, 3] and meta["config"]["out_dir"] == str(tmp_path / "all")
    assert meta["seed_seconds"] == {"seed-0": 60.0, "seed-1": 61.0, "seed-2": 62.0, "seed-3": 63.0}
    assert [(m["folder"], m["seeds"], m["wall_seconds"]) for m in meta["merged_from"]] == [
        (str(tmp_path / "a"), [0, 2], 20.0), (str(tmp_path / "b"), [1, 3], 20.0)]
    for s in range(4):
        assert (merged / "site" / f"seed-{s}" / "index.html").read_text() == f"report of seed {s}"
    assert "seed-3/index.html" in (merged / "site" / "index.html").read_text()
    assert "| 4 |" in (merged / "table.md").read_text()  # the contrast's seed count


def test_merging_into_one_of_the_inputs_keeps_its_reports_and_leaves_links_behind(tmp_path):
    first, second = board(tmp_path / "a", [0]), board(tmp_path / "b", [1])
    outside = tmp_path / "secret.txt"
    outside.write_text("not part of any report")
    os.symlink(outside, second / "site" / "seed-1" / "leak.txt")
    merge_boards([first, second], first)
    assert results(first)["summary"]["oppo"]["accuracy"]["n_seeds"] == 2
    assert (first / "site" / "seed-0" / "index.html").read_text() == "report of seed 0"
    assert (first / "site" / "seed-1" / "index.html").is_file()
    assert not (first / "site" / "seed-1" / "leak.txt").exists()


@pytest.mark.parametrize(("change", "message"), [
    (lambda b: b["metadata"]["config"].update(train_n=500), "config differs from .* in train_n"),
    (lambda b: b["metadata"].update(eval_suite={"n": 100, "seed": 0}), "eval suite .* differs"),
    (lambda b: b["per_seed"]["1"].pop("baseline"), r"per_seed\.1 has rows \['oppo'\]"),
    (lambda b: b["per_seed"]["1"]["oppo"]["values"].update(accuracy="0.7"),
     r"per_seed\.1\.oppo\.values\.accuracy is not a finite number"),
    (lambda b: b.pop("per_seed"), "per_seed must be a non-empty object"),
    (lambda b: b["metadata"]["stages"].pop("commits"), r"metadata\.stages\.commits must be an object"),
])
def test_boards_that_do_not_belong_together_are_refused_naming_the_file_and_field(tmp_path, change, message):
    first, second = board(tmp_path / "a", [0]), board(tmp_path / "b", [1])
    data = results(second)
    change(data)
    (second / "results.json").write_text(json.dumps(data))
    with pytest.raises(MergeError, match=message) as caught:
        merge_boards([first, second], tmp_path / "out")
    assert str(caught.value).startswith(str(second / "results.json"))
    assert not (tmp_path / "out").exists()  # nothing written


def test_a_seed_in_two_boards_or_an_unreadable_board_is_refused(tmp_path):
    with pytest.raises(MergeError, match="seed 0 is in both"):
        merge_boards([board(tmp_path / "a", [0]), board(tmp_path / "b", [0, 1])], tmp_path / "out")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "results.json").write_text("{not json")
    with pytest.raises(MergeError, match="c/results.json: not a readable leaderboard"):
        merge_boards([tmp_path / "a", tmp_path / "c"], tmp_path / "out")
    with pytest.raises(MergeError, match="at least two"):
        merge_boards([tmp_path / "a"], tmp_path / "out")


def test_the_command_merges_and_refuses_with_one_line(tmp_path, capsys):
    first, second = board(tmp_path / "a", [0]), board(tmp_path / "b", [1])
    cli_main(["merge", "--out", str(tmp_path / "all"), str(first), str(second)])
    assert capsys.readouterr().out == f"leaderboard: {tmp_path / 'all'}\n"
    assert results(tmp_path / "all")["metadata"]["config"]["seeds"] == [0, 1]
    with pytest.raises(SystemExit) as exited:
        cli_main(["merge", str(first), str(second)])
    assert exited.value.code == 2 and capsys.readouterr().err == "oppo-train merge: merge needs --out DIR\n"


def test_the_committed_leaderboard_split_in_two_and_merged_gives_back_its_numbers(tmp_path):
    committed = results(COMMITTED)
    seeds = sorted(committed["per_seed"], key=int)
    assert len(seeds) >= 2
    for name, part in (("first", seeds[:1]), ("rest", seeds[1:])):
        folder = tmp_path / name
        folder.mkdir()
        kept = {k: v for k, v in committed["metadata"]["stages"]["seconds"].items() if k.split("/")[0][5:] in part}
        half = {**committed, "per_seed": {s: committed["per_seed"][s] for s in part},
                "metadata": {**committed["metadata"], "stages": {"seconds": kept, "commits": {}}}}
        (folder / "results.json").write_text(json.dumps(half))
    merged = results(merge_boards([tmp_path / "first", tmp_path / "rest"], tmp_path / "all"))
    assert merged["summary"] == committed["summary"]
    assert [(c["treated"], c["control"], c["metric"], c["verdict"]) for c in merged["contrasts"]] == [
        (c["treated"], c["control"], c["metric"], c["verdict"]) for c in committed["contrasts"]]
    for ours, theirs in zip(merged["contrasts"], committed["contrasts"], strict=True):
        assert ours["diffs"] == pytest.approx(theirs["diffs"]) and ours["p_holm"] == pytest.approx(theirs["p_holm"])
    assert merged["metadata"]["seed_seconds"] == pytest.approx(committed["metadata"]["seed_seconds"])
