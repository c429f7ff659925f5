"""The report in a real browser: headless Chromium through Playwright opens it from disk (file://, no server),
sorts a leaderboard, opens the sample explorer, saves screenshots under test-artifacts/, and proves an injected
<script> in a model response never runs. Skips when Playwright or Chromium is missing, unless
MEPBENCH_REQUIRE_BROWSER=1, where that is a failure."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SHARED, shared_fixture, unavailable
from test_report import PAYLOAD, TASK, mer_run, scripted_run

from mepbench.backends.scripted import ScriptedBackend
from mepbench.report import ReportOptions, build_report
from mepbench.report.cells import Cell
from mepbench.report.seeds import SeedBoard, SeedCell, SeedRow, write_seed_board

pytestmark = pytest.mark.slow
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _unavailable(reason: str) -> None:
    unavailable(reason, "MEPBENCH_REQUIRE_BROWSER")


def chromium_path() -> str | None:
    """$MEPBENCH_CHROMIUM, else the first Chromium-family binary on PATH (Debian's `chromium` package)."""
    return os.environ.get("MEPBENCH_CHROMIUM") or next(filter(None, map(shutil.which, CHROMIUM_NAMES)), None)


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (the system binary, never a downloaded one) driven by Playwright."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install playwright)")
    executable = chromium_path()
    if executable is None:
        _unavailable("no Chromium binary found (apt-get install chromium, or set MEPBENCH_CHROMIUM)")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=executable, headless=True)
        yield instance
        instance.close()


@pytest.fixture(scope="module")
def site(browser, tmp_path_factory) -> Path:
    """A report of real runs, built once a browser is there to open it: tiny-omni through the CLI, two scripted
    responders on one task (one injects HTML) and, with the shared fixtures, AffectGPT's released MER2023 answers."""
    root = tmp_path_factory.mktemp("browser")
    tiny = root / "tiny-omni-run"
    done = subprocess.run([str(Path(sys.executable).parent / "mepbench"), "eval", "--limit", "3", "--cache-dir",
                           str(root / "cache"), "--output-dir", str(tiny)], capture_output=True, text=True,
                          timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = [tiny, scripted_run(root), scripted_run(root, "guesser", ScriptedBackend())]
    if (SHARED / "fixtures" / "mer_unibench").is_dir():
        runs.append(mer_run(root))
    return build_report(runs, root / "site", ReportOptions())


@pytest.fixture
def page(browser):
    """A fresh tab in its own browser context."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()


@pytest.fixture
def errors(page) -> list[str]:
    """Script errors and console errors of `page` (a CSP violation or a broken image shows up here)."""
    seen: list[str] = []
    page.on("pageerror", lambda exc: seen.append(str(exc)))
    page.on("console", lambda msg: seen.append(msg.text) if msg.type == "error" else None)
    return seen


def _shot(tab, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    tab.screenshot(path=str(path), full_page=True)
    return path


def _column(tab, board: str, index: int) -> list[str]:
    return tab.eval_on_selector_all(f'section[data-board="{board}"] tbody tr',
                                    f"rows => rows.map(r => r.cells[{index}].innerText.trim())")


def _scores(tab, board: str, index: int) -> list[float]:
    return [float(v) for v in tab.eval_on_selector_all(
        f'section[data-board="{board}"] tbody tr', f"rows => rows.map(r => r.cells[{index}].dataset.sort)")]


def test_leaderboard_rows_and_sorting(site, page, errors):
    page.goto(site.as_uri())
    assert page.locator('section[data-board="mep-synth"] tbody tr.run').count() == 1
    board = f'section[data-board="{TASK}"]'
    assert page.locator(f"{board} tbody tr.run").count() == 2
    assert sorted(_column(page, TASK, 0)) == ["guesser", "scripted"]
    scores = _scores(page, TASK, 2)
    assert scores == sorted(scores, reverse=True)
    header = page.locator(f"{board} thead th", has_text="Accuracy")
    header.click()
    assert header.get_attribute("aria-sort") == "descending" and _scores(page, TASK, 2) == scores
    header.click()
    assert header.get_attribute("aria-sort") == "ascending" and _scores(page, TASK, 2) == scores[::-1]
    model = page.locator(f"{board} thead th", has_text="model")
    model.click()
    assert _column(page, TASK, 0) == ["guesser", "scripted"] and model.get_attribute("aria-sort") == "ascending"
    _shot(page, "report-index.png")
    assert errors == []


def test_reported_rows_are_marked_and_sort_with_runs(site, page, errors):
    shared_fixture("mer_unibench")
    page.goto(site.as_uri())
    mer = 'section[data-board="mer2023"]'
    assert page.locator(f"{mer} tbody tr.run").count() == 1
    assert page.locator(f"{mer} tbody tr.reported").count() >= 13
    assert page.locator(f"{mer} tr.reported .badge.reported").first.inner_text() == "reported"
    scores = _scores(page, "mer2023", 2)
    assert scores == sorted(scores, reverse=True)
    page.locator(f"{mer} thead th", has_text="model").click()
    names = _column(page, "mer2023", 0)
    assert names == sorted(names, key=str.lower)
    page.locator(f"{mer} thead th", has_text="HIT").click()
    page.locator(f"{mer} thead th", has_text="HIT").click()
    assert _scores(page, "mer2023", 2) == sorted(scores)
    page.locator(f"{mer} thead th", has_text="HIT").scroll_into_view_if_needed()
    _shot(page, "report-reported.png")
    assert errors == []


def test_explorer_opens_from_the_run_page(site, page, errors):
    page.goto(site.as_uri())
    page.locator('table.runs a', has_text="scripted").click()
    page.locator("a.button", has_text="explore samples").first.click()
    first = page.locator("details.sample").first
    assert first.get_attribute("open") is None
    first.locator("summary").click()
    assert first.get_attribute("open") is not None
    assert first.locator("mark.hl.recovered").count() >= 1 and first.locator("mark.hl.hallucinated").count() >= 1
    assert first.locator(".subtitle").is_visible() and first.locator("audio").count() == 1
    assert first.locator("img").evaluate("img => img.complete && img.naturalWidth > 0")
    assert _shot(page, "report-explorer.png").stat().st_size > 10_000
    page.fill("#sample-filter", "synth-00001")
    assert page.locator("details.sample:visible").count() == 1
    assert errors == []


def test_injected_script_in_a_response_does_not_execute(site, page, errors):
    page.goto((site.parent / f"samples-scripted-{TASK}.html").as_uri())
    page.eval_on_selector_all("details.sample", "els => els.forEach(e => { e.open = true; })")
    page.wait_for_timeout(300)
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert PAYLOAD in page.locator("details.sample .reasoning pre").first.inner_text()
    assert page.locator("details.sample img[src='x']").count() == 0
    _shot(page, "report-injection.png")
    assert errors == []  # had the payload become markup, CSP would have refused it here, loudly


def test_run_page_charts_render(site, page, errors):
    page.goto((site.parent / "run-tiny-omni-run.html").as_uri())
    assert page.locator("figure.chart svg rect.bar").count() >= 10
    assert page.locator("text=faithfulness: the three probe sets and the headline PF (chance 50)").count() == 1
    assert page.locator("text=grounded utilization: recall with the modality minus recall without it").count() == 1
    assert page.locator("figure.confusion").count() == 1
    _shot(page, "report-run.png")
    assert errors == []


def test_mer_run_page_shows_wheel_confusions(site, page, errors):
    shared_fixture("mer_unibench")
    page.goto((site.parent / "run-mer.html").as_uri())
    assert page.locator("figure.confusion").count() == 5
    assert errors == []


def test_seed_board_sorts_by_the_mean_and_links_each_seed(page, errors, tmp_path):
    seeds = (0, 1, 2)

    def cell(mean: float, spread: float) -> SeedCell:
        return SeedCell(Cell(mean, mean - spread, mean + spread, digits=1), (mean - 1, mean, mean + 1))

    rows = [SeedRow(name, {"acc": cell(acc, 5.0), "util_v": cell(util, 20.0)})
            for name, acc, util in (("baseline", 64.5, 0.4), ("oppo", 68.0, 47.0), ("sft", 66.2, 51.9))]
    board = SeedBoard("seeds", [("acc", "Acc"), ("util_v", "Util V")], rows, list(seeds),
                      [(f"seed {s}", f"seed-{s}/index.html") for s in seeds], [])
    index = write_seed_board(board, tmp_path / "index.html")
    for s in seeds:
        (tmp_path / f"seed-{s}").mkdir()
        (tmp_path / f"seed-{s}" / "index.html").write_text(f"<title>report of seed {s}</title>")
    page.goto(index.as_uri())
    names = "rows => rows.map(r => r.cells[0].innerText.trim())"
    header = page.locator("table.seeds thead th", has_text="Util V")
    header.click()
    assert page.eval_on_selector_all("table.seeds tbody tr", names) == ["sft", "oppo", "baseline"]
    header.click()
    assert page.eval_on_selector_all("table.seeds tbody tr", names) == ["baseline", "oppo", "sft"]
    assert "67.0 / 68.0 / 69.0" in page.locator("table.seeds tbody tr", has_text="oppo").inner_text()
    _shot(page, "seed-board.png")
    page.click("text=seed 2")
    assert page.title() == "report of seed 2"
    assert errors == []
