"""HTML reports from real run directories: leaderboards with reported rows, run pages, the sample explorer with
recovered and hallucinated cues, escaping of untrusted model output, the published data files and the CLI."""

from __future__ import annotations

import json
import re
import shutil
from collections import defaultdict
from pathlib import Path

import pytest
import typer
from conftest import shared_fixture
from helpers import copy_builtin_spec
from typer.testing import CliRunner

from mepbench.backends.scripted import ScriptedBackend
from mepbench.report import ReportOptions, build_boards, build_report, load_references, load_runs
from mepbench.report.cells import Cell
from mepbench.report.charts import bar_chart, confusion_from_pairs
from mepbench.report.cli import report_command
from mepbench.report.highlight import Segment, highlight
from mepbench.results import write_run
from mepbench.runner import EvalConfig, run_eval
from mepbench.types import Response

TASK = "mini-mep"
PAYLOAD = "<script>window.__pwned=1</script><img src=x onerror=window.__pwned=2>"
HALLUCINATED = "The person bursts into laughter."
REFERENCE = Path(__file__).resolve().parents[1] / "leaderboards" / "reference"


class InjectingResponder(ScriptedBackend):
    """Answers the emotion question with the sample's reference reasoning plus a cue it cannot have perceived and
    an HTML injection payload; answers every probe "No." (so controls fail)."""

    def __init__(self, cache: Path):
        super().__init__()
        self.cache = cache

    def _reasoning(self) -> dict[str, str]:
        manifest = next((self.cache / "data").glob("mep-synth-*")) / "manifest.jsonl"
        rows = [json.loads(line) for line in manifest.read_text().splitlines()]
        return {r["id"]: r["reasoning"].replace("</think>", f" {HALLUCINATED} {PAYLOAD}</think>") for r in rows}

    def generate(self, requests):
        self.asked.extend(requests)
        reasoning = self._reasoning()
        return [Response(text="No." if "Please answer with only" in r.messages[-1].text()
                         else reasoning[r.sample_id], completion_tokens=20) for r in requests]


def scripted_run(root: Path, name: str = "scripted", backend: ScriptedBackend | None = None, n: int = 6) -> Path:
    """A real run directory of the harness on a small mep-synth task, answered by `backend` (default: the
    `InjectingResponder`) and recorded under the model name `name`."""
    specs = root / "specs"
    if not (specs / f"{TASK}.yaml").is_file():
        copy_builtin_spec(specs, TASK, n=n, mep=True)
    config = EvalConfig(model=name, tasks=[TASK], include_paths=[specs], cache_dir=root / "cache", bootstrap=100,
                        use_cache=False)
    write_run(run_eval(config, backend=backend or InjectingResponder(root / "cache")), config, root / name)
    return root / name


def mer_run(root: Path) -> Path:
    """A replay of AffectGPT's released MER2023 answers (shared fixtures), scored as published."""
    base = shared_fixture("mer_unibench")
    config = EvalConfig(model=str(base / "AffectGPT" / "output"), backend="replay", tasks=["mer2023"],
                        data_root=base / "MERTools" / "MERBench" / "dataset",
                        task_args={"*": {"wheel_dir": str(shared_fixture("emotion_wheel"))}}, allow_pickle=True,
                        cache_dir=root / "cache")
    write_run(run_eval(config), config, root / "mer")
    return root / "mer"


def tiny_reference(folder: Path) -> Path:
    """A reference folder with one cited row on the scripted task."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sources.yaml").write_text(
        "paper-t1:\n  short: Paper, Table 1\n  title: A Paper\n  authors: Someone et al.\n  venue: Nowhere 2026\n"
        "  url: https://example.org/paper\n  locator: Table 1\n  evidence: primary\n")
    (folder / "rows.csv").write_text("model,setting,task,metric,value,n,citation,note\n"
                                     f"Published-7B,AVT,{TASK},accuracy,61.25,6,paper-t1,\n"
                                     f"Published-7B,AVT,{TASK},acc_at_v,40.0,,paper-t1,read from a figure\n")
    return folder


@pytest.fixture(scope="module")
def scripted(tmp_path_factory) -> Path:
    return scripted_run(tmp_path_factory.mktemp("scripted"))


@pytest.fixture(scope="module")
def report(scripted, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("report")
    options = ReportOptions(reference_dir=tiny_reference(root / "reference"))
    return build_report([scripted], root / "out", options)


def _pages(index: Path) -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in index.parent.glob("*.html")}


def test_report_folder_has_index_run_page_and_explorer(report, scripted):
    names = set(_pages(report))
    assert {"index.html", "run-scripted.html", f"samples-scripted-{TASK}.html"} <= names
    thumbs = list((report.parent / "media").glob("*.jpg"))
    assert len(thumbs) == 6 and all(t.stat().st_size < 8000 for t in thumbs)


def test_leaderboard_has_run_and_reported_rows_with_ci_and_counts(report, scripted):
    html = _pages(report)["index.html"]
    board = html[html.index(f'data-board="{TASK}"'):]
    board = board[:board.index("</section>")]
    rows = re.findall(r'<tr class="(run|reported)">', board)
    assert rows == ["reported", "run"] or rows == ["run", "reported"]
    assert 'class="badge reported"' in board and "61.25" in board
    assert '<span class="ci">[' in board
    assert 'href="#cite-paper-t1"' in board and 'id="cite-paper-t1"' in html


def test_boards_put_scores_on_one_scale(scripted):
    run = load_runs([scripted])[0]
    refs = load_references(None)
    board = next(b for b in build_boards([run], refs) if b.name == TASK)
    entry = board.entries[0]
    agg = run.tasks[TASK]
    assert board.primary == "accuracy" and entry.n == 6
    assert entry.cells["accuracy"].value == pytest.approx(100 * agg["variants"]["full"]["metrics"]["accuracy"]["value"])
    assert entry.cells["acc_at_v"].value == pytest.approx(100 * agg["summary"]["acc_at_v"])
    assert entry.cells["utilization_recall"].value == pytest.approx(100 * agg["summary"]["utilization_recall"])
    assert entry.cells["pf_v"].value == pytest.approx(100 * agg["summary"]["pf_v"])
    assert entry.cells["grounded_recall_video"].value == pytest.approx(100 * agg["summary"]["grounded_recall_video"])
    # Acc@V never stands alone: its TPR and TNR-absent columns follow it
    at = board.columns.index("acc_at_v")
    assert board.columns[at - 1:at + 3] == ["pf_v", "acc_at_v", "control_acc_v", "tnr_absent_v"]
    assert entry.notes == [] and not board.caveats  # no published row here, and the run has all three


def test_published_acc_at_v_without_tpr_and_tnr_absent_is_flagged(report):
    html = _pages(report)["index.html"]
    board = html[html.index(f'data-board="{TASK}"'):]
    board = board[:board.index("</section>")]
    assert "Acc@V / Acc@A without TPR and TNR-absent" in board and 'class="muted caveat"' in board


def test_all_mode_lists_run_boards_first_then_published_groups_with_their_members(scripted):
    boards = build_boards(load_runs([scripted]), load_references(REFERENCE), mode="all")
    names = [b.name for b in boards]
    assert names[0] == TASK and names.index("mer-unibench") + 1 == names.index("mer2023")
    mme = boards[names.index("mme-emotion")]
    assert mme.kind == "group" and mme.primary == "CoT-S" and len(mme.entries) == 20
    assert mme.header("mme-emotion-er-lab") == "er-lab" and mme.header("Rec-S") == "Rec-S"
    assert [e.cells["CoT-S"].value for e in mme.entries[:2]] == [56.0, 54.8]
    assert "mer-unibench" not in [b.name for b in build_boards(load_runs([scripted]), load_references(REFERENCE))]


def test_untrusted_output_is_escaped_everywhere(report):
    for name, html in _pages(report).items():
        assert re.findall(r"<script\b", html) == ["<script"], name  # the report's own script only
        assert not re.search(r"<[^<>]*\bonerror\s*=", html), name
        assert "<img src=x" not in html
    explorer = _pages(report)[f"samples-scripted-{TASK}.html"]
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;&lt;img src=x onerror=window.__pwned=2&gt;" in explorer


def test_pages_reach_nothing_outside_the_folder_but_local_media(report):
    for name, html in _pages(report).items():
        for attr, url in re.findall(r'\b(src|href)="([^"]*)"', html):
            assert not url.startswith(("http:", "//", "javascript:")), (name, url)
            if attr == "src":
                assert url.startswith(("media/", "file:///")), (name, url)
        assert "Content-Security-Policy" in html and "default-src &#39;none&#39;" in html


def test_explorer_marks_recovered_and_hallucinated_cues(report):
    explorer = _pages(report)[f"samples-scripted-{TASK}.html"]
    assert explorer.count('<details class="sample"') == 6
    assert '<mark class="hl recovered">' in explorer
    assert '<mark class="hl hallucinated">laughter</mark>' in explorer
    assert 'class="chip recovered"' in explorer and 'class="chip hallucinated"' in explorer
    assert "<b>subtitle</b>" in explorer and "<audio controls" in explorer and 'src="media/' in explorer
    assert "asked with the modality masked" in explorer and "<td>mask:video</td>" in explorer
    assert "<td>absent</td>" in explorer and "<td>present</td>" in explorer  # negatives stand on their own line


def test_run_page_shows_metadata_panels_and_failures(report):
    page = _pages(report)["run-scripted.html"]
    for text in ("model fingerprint", "git commit", "mask mode per task", "judges", "Packages",
                 "reliance: Accuracy under each variant", "utilization: cue recall per modality",
                 "faithfulness: the three probe sets and the headline PF", "grounded utilization",
                 "claims under masking", "TNR-absent: absent cue, full input", "label × prediction", "Failures"):
        assert text in page, text
    assert page.count("<svg") >= 5


def test_rebuild_reuses_thumbnails(report, scripted):
    before = {p.name: p.stat().st_mtime_ns for p in (report.parent / "media").glob("*.jpg")}
    build_report([scripted], report.parent, ReportOptions(references="none"))
    after = {p.name: p.stat().st_mtime_ns for p in (report.parent / "media").glob("*.jpg")}
    assert before == after


def _without_build_time(html: str) -> str:
    return re.sub(r"Built in [0-9.]+ s", "Built in ? s", html)


def test_report_is_a_function_of_the_run_directory_alone(tmp_path):
    run = scripted_run(tmp_path / "work", n=4)
    first = build_report([run], tmp_path / "before", ReportOptions(references="none"))
    shutil.rmtree(tmp_path / "work" / "cache")  # the generated task data, the media and the cache
    shutil.rmtree(tmp_path / "work" / "specs")
    again = build_report([run], tmp_path / "after", ReportOptions(references="none"))
    before, after = _pages(first), _pages(again)
    assert before.keys() == after.keys() and len(before) == 3
    for name in before:
        assert _without_build_time(before[name]) == _without_build_time(after[name]), name
    explorer = after[f"samples-scripted-{TASK}.html"]
    assert 'class="chip recovered"' in explorer and "<b>subtitle</b>" in explorer and 'src="media/' in explorer
    assert sorted(p.name for p in (tmp_path / "after" / "media").iterdir()) == \
        sorted(p.name for p in (run / "posters").iterdir()) and len(list((run / "posters").iterdir())) == 4


def test_recorded_poster_names_cannot_point_outside_the_run(scripted, tmp_path):
    from mepbench.report.media import copy_posters

    secret = tmp_path / "secret.jpg"
    secret.write_bytes(b"not yours")
    found = copy_posters(scripted, ["../../secret.jpg", str(secret), "posters/../../secret.jpg",
                                    "posters/0123456789abcdef0123.jpg"], tmp_path / "out")
    assert found == {} and not (tmp_path / "out").exists()


def test_mer_run_has_confusions_checkpoints_and_published_rows(tmp_path):
    run = mer_run(tmp_path)
    index = build_report([run], tmp_path / "out", ReportOptions(thumbnails=False))
    html = index.read_text()
    board = html[html.index('data-board="mer2023"'):]
    board = board[:board.index("</section>")]
    assert board.count('<tr class="reported">') >= 13 and board.count('<tr class="run">') == 1
    assert "78.54" in board and 'href="#cite-affectgpt2025-table2"' in board
    page = (index.parent / "run-mer.html").read_text()
    assert page.count('<figure class="confusion">') == 5 and "per checkpoint" in page


def test_cli_command_writes_the_report(scripted, tmp_path):
    app = typer.Typer()
    app.command()(report_command)
    result = CliRunner().invoke(app, [str(scripted), "-o", str(tmp_path / "site"), "--references", "none",
                                      "--no-thumbnails"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "site" / "index.html").is_file() and "wrote" in result.output
    bad = CliRunner().invoke(app, [str(scripted), "-o", str(tmp_path / "x"), "--references", "some"])
    assert bad.exit_code != 0


def test_highlight_marks_longest_phrase_case_insensitively():
    segments = highlight("Furrowed brows and brows.", {"furrowed brows": "recovered", "brows": "hallucinated"})
    assert segments == [Segment("Furrowed brows", "recovered"), Segment(" and "), Segment("brows", "hallucinated"),
                        Segment(".")]
    assert highlight("", {"x": "cue"}) == [] and highlight("plain", {}) == [Segment("plain")]


def test_bar_chart_clamps_and_draws_whiskers_only_with_a_ci():
    chart = bar_chart("t", [("a", Cell(50.0, 40.0, 60.0)), ("b", Cell(150.0)), ("c", Cell(None))])
    a, b, c = chart.bars
    assert (a.width, a.ci_x1, a.ci_x2) == (150.0, 120.0, 180.0)
    assert b.width == 300.0 and b.ci_x1 is None and c.width == 0.0 and c.text == "—"


def test_confusion_from_pairs_counts_unparsed_answers():
    view = confusion_from_pairs("t", [("sad", "sad"), ("sad", None), ("happy", "sad")])
    assert view.rows == ("happy", "sad") and view.columns == ("happy", "sad", "(none)")
    assert [[c for c, _ in row] for row in view.cells] == [[0, 1, 0], [0, 1, 1]]


def test_reference_rows_are_cited_and_validated(tmp_path):
    refs = load_references(REFERENCE)
    assert len(refs.rows) > 600 and all(r.citation in refs.citations for r in refs.rows)
    row = next(r for r in refs.rows if (r.model, r.setting, r.task) == ("AffectGPT", "AVT", "mer2023"))
    assert (row.metric, row.value, row.n, row.digits) == ("HIT", 78.54, 411, 2)
    bad = tiny_reference(tmp_path / "bad")
    (bad / "more.csv").write_text("model,task,metric,value,citation\nX,t,m,1.0,nowhere\n")
    with pytest.raises(ValueError, match="unknown citation 'nowhere'"):
        load_references(bad)


def _values(rows, task_filter) -> dict[tuple[str, str], dict[str, float]]:
    out: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    for r in rows:
        if task_filter(r):
            out[(r.source_file, r.model, r.setting)][f"{r.task}/{r.metric}"] = r.value
    return out


def test_published_mer_unibench_means_match_their_rows():
    rows = load_references(REFERENCE).rows
    entries = _values(rows, lambda r: r.metric in ("HIT", "WAF", "Fs", "mean"))
    assert len(entries) == 16
    for key, values in entries.items():
        mean = values.pop("mer-unibench/mean")
        assert len(values) == 9, key
        tolerance = 0.15 if key[1] == "OPPO" else 0.011  # OPPO: 80.94 vs 81.05 in the secondary source (noted)
        assert sum(values.values()) / 9 == pytest.approx(mean, abs=tolerance), key


def test_published_mme_emotion_overall_is_the_weighted_task_mean():
    rows = [r for r in load_references(REFERENCE).rows if r.task.startswith("mme-emotion")]
    weights = {r.task: r.n for r in rows if r.task != "mme-emotion"}
    assert sum(weights.values()) == 6500 and len(weights) == 8
    for (_, model, _), values in _values(rows, lambda r: True).items():
        for metric in ("Rec-S", "Rea-S"):
            pooled = sum(values[f"{t}/{metric}"] * n for t, n in weights.items()) / 6500
            tolerance = 2.5 if (model, metric) == ("Video-LLaMA", "Rea-S") else 0.1  # inconsistent cell (noted)
            assert pooled == pytest.approx(values[f"mme-emotion/{metric}"], abs=tolerance), (model, metric)
    noted = {(r.model, r.task) for r in rows if r.note and r.metric == "CoT-S"}
    cells = {(r.model, r.task, r.metric): r.value for r in rows}
    for (model, task, metric), value in cells.items():
        if metric == "CoT-S" and (model, task) not in noted:
            half = (cells[(model, task, "Rec-S")] + cells[(model, task, "Rea-S")]) / 2
            assert half == pytest.approx(value, abs=0.06), (model, task)
