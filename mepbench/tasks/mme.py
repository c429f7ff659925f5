"""MME-Emotion (arXiv 2508.09210; benchmarks.md §4) as eight tasks: the model answers with reasoning and a
label from the sample's label set; a step judge (role `step`, published GPT-4.1) splits the answer into
steps; a score judge (role `score`, published GPT-4o) rates each step 0/1 (the last C/K for FG-ER and
ML-ER) from up to 10 frames at 1 fps, the Qwen2-Audio clue and the label; Rec-S / Rea-S / CoT-S follow.

Judge frames go into the score request as ImageParts (JPEG files, as upstream sends base64 JPEGs), so
any image-capable backend sees what GPT-4o saw. Judge answers and their failures are kept per sample.
The judge prompts (`tasks/templates/mme_*.jinja`) are in our words with upstream's five rules and C/K
examples; upstream's FG-SA example 3 ("positive" vs "strong positive" → 1/1, contradicting its example 2,
`eval_cot/FG-SA/code/eval_cot_gpt4o.py`) is left out, and the score judge is told the step count.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mepbench.aggregation import PairedMetric
from mepbench.judges import BUDGET_EXHAUSTED
from mepbench.masking import FULL, MaskMode, Variant
from mepbench.media import MediaError
from mepbench.scoring import metrics as M
from mepbench.scoring import mme as S
from mepbench.tasks.base import TaskContext
from mepbench.tasks.mme_data import judge_frames, rule_for
from mepbench.tasks.options import option
from mepbench.tasks.spec import SpecError, SpecTask
from mepbench.types import GenerationParams, ImagePart, Message, Request, Response, Sample, TextPart

SCORING_DEFAULTS: dict[str, Any] = {"question": "", "judge_frames": 10, "frame_interval_s": 1.0, "alpha": S.ALPHA,
                                    "judge_retries": 3, "step_max_new_tokens": 1024, "score_max_new_tokens": 512}
TEMPLATES = ("system", "user", "judge_system", "step", "score")
ROLES = ("step", "score")


def failure_kind(role: str, error: str) -> str:
    """A judge error message → counted reason: `<role>_timeout`, `judge_budget` or `<role>_error`."""
    low = error.lower()
    if BUDGET_EXHAUSTED in low:
        return "judge_budget"
    return f"{role}_timeout" if "timeout" in low or "timed out" in low else f"{role}_error"


def judge_identity(backend: Any) -> str:
    """The model a judge runs (its description's model id, replay path, else its fingerprint)."""
    try:
        described = backend.describe()
    except Exception:  # a judge that cannot describe itself is still named by its fingerprint
        described = {}
    return str(described.get("model") or described.get("model_id") or described.get("path") or backend.fingerprint())


def _judge_variant(stage: str, variant: str) -> str:
    return stage if variant == FULL.name else f"{stage}:{variant}"


@dataclass(frozen=True)
class MMEOptions:
    """How MME-Emotion is scored."""

    mode: Literal["strict", "upstream"] = option("strict", "strict: judge failures score 0 and every sample is kept; "
                                                 "upstream: the published parser and drop rule (leaderboard parity)")


class MMETask(SpecTask):
    """One MME-Emotion task; `dataset.task` picks the protocol rule, `scoring:` the question and judge settings,
    the `mode` option strict (failures score 0) or upstream (published parser and drop rule). Scores are 0–100."""

    scale = 100
    Options = MMEOptions

    def __init__(self, context: TaskContext, options: Any = None):
        super().__init__(context, options)
        self.scoring = self.scoring_settings(SCORING_DEFAULTS)
        missing = [t for t in TEMPLATES if t not in self._templates]
        if missing or not self.scoring["question"]:
            raise SpecError(f"{self.spec_path}: an mme task needs prompt templates {list(TEMPLATES)} and "
                            f"scoring.question (missing: {missing or ['scoring.question']})")
        self.rule = rule_for(self.spec["dataset"].get("task", ""))
        self.mode = self.options.mode
        extra = ("Rec-P", "Rec-F1") if self.rule.multi_label and self.mode == "strict" else ()
        self.metrics = ("Rec-S", "Rea-S", "CoT-S", *extra)
        self.primary_metric = "CoT-S"
        self._judge_ids: dict[str, str] = {}
        self._frames: dict[str, list[Path] | MediaError] = {}

    def fingerprint(self) -> str:
        """The spec fingerprint (templates included) plus the rule, the scoring settings and the mode."""
        blob = repr((super().fingerprint(), self.rule, sorted(self.scoring.items()), self.mode))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def build_request(self, sample: Sample, variant: Variant, mode: MaskMode) -> Request:
        """Our prompt (upstream never published one, §4.3): the clip, the question and the sample's label set."""
        return self.chat(sample, variant, mode, "system", "user", self.params, question=self.scoring["question"],
                         label_set=sample.metadata["label_set"], multi_label=self.rule.multi_label)

    def step_request(self, row: dict[str, Any]) -> Request:
        """Stage 1: the answer to split into steps (the label set is not shown, as upstream deletes it)."""
        text = self.render("step", target=self.rule.target, response=row["response"].text)
        return self._judge_request(row, "mme-step", (TextPart(text),), self.scoring["step_max_new_tokens"])

    def score_request(self, row: dict[str, Any], frames: list[Path]) -> Request:
        """Stage 2: rules, label(s), audio clue and steps as text, then the frames as images."""
        gold = row["sample"].metadata["gold"]
        text = self.render("score", target=self.rule.target, multi_label=self.rule.multi_label,
                           fine_sentiment=self.rule.fine_sentiment, k=len(gold), label=", ".join(gold),
                           audio_clue=row["sample"].metadata["audio_clue"], steps=S.format_steps(row["steps"]),
                           n_steps=len(row["steps"]), n_frames=len(frames))
        parts = (TextPart(text), *(ImagePart(str(f)) for f in frames))
        return self._judge_request(row, "mme-score", parts, self.scoring["score_max_new_tokens"])

    def _judge_request(self, row: dict[str, Any], stage: str, parts: tuple[Any, ...], tokens: int) -> Request:
        system = Message("system", (TextPart(self.render("judge_system")),))
        return Request((system, Message("user", parts)), GenerationParams(max_new_tokens=int(tokens)),
                       sample_id=row["sample_id"], variant=_judge_variant(stage, row["variant"]))

    def _judge(self, role: str) -> Any:
        judge = self.context.judge_for(role)
        if judge is None:
            raise ValueError(f"task {self.name}: MME-Emotion needs --judge step=MODEL and --judge score=MODEL "
                             f"(published: {S.PUBLISHED_JUDGES['step']} and {S.PUBLISHED_JUDGES['score']} on an "
                             "OpenAI-compatible endpoint); other judges run but are marked not comparable")
        self._judge_ids[role] = judge_identity(judge)
        return judge

    def _ask(self, judge: Any, requests: list[Request]) -> tuple[list[Response], list[int]]:
        """Every request answered, error responses retried up to `judge_retries` times (not budget refusals);
        a judge that raises yields error responses, never an exception."""
        answers: list[Response] = [Response(error="not asked")] * len(requests)
        attempts = [0] * len(requests)
        pending = list(range(len(requests)))
        for _ in range(int(self.scoring["judge_retries"]) + 1):
            if not pending:
                break
            try:
                got = list(judge.generate([requests[i] for i in pending]))
            except Exception as exc:  # a judge backend bug is a counted failure of these samples
                got = [Response(error=f"judge backend error: {type(exc).__name__}: {exc}")] * len(pending)
            for i, answer in zip(pending, got):
                answers[i], attempts[i] = answer, attempts[i] + 1
            pending = [i for i in pending if not answers[i].ok and BUDGET_EXHAUSTED not in (answers[i].error or "")]
        return answers, attempts

    def _clip_frames(self, sample: Sample) -> list[Path]:
        if int(self.scoring["judge_frames"]) == 0:
            return []
        if not sample.video:
            raise MediaError("<none>", "no clip for the judge's frames (video missing)")
        if sample.video not in self._frames:
            try:
                self._frames[sample.video] = judge_frames(sample.video, self.context.cache_dir,
                                                          int(self.scoring["judge_frames"]),
                                                          float(self.scoring["frame_interval_s"]))
            except MediaError as exc:
                self._frames[sample.video] = exc
        found = self._frames[sample.video]
        if isinstance(found, MediaError):
            raise found
        return found

    def score_rows(self, rows: list[dict[str, Any]]) -> None:
        """Both judge stages for every answered main row; each failure is recorded with its reason."""
        main = [r for r in rows if not r["item"]]
        for r in main:
            r.update(steps=None, step_text=None, score_text=None, mme_failure=None, mme_detail=None,
                     judge_attempts={}, judge_tokens={}, rec=0.0, rea=0.0, cot=0.0, rec_upstream=None,
                     rea_upstream=None, steps_upstream=None, rec_pooled=None, rea_pooled=None, ml_predicted=None,
                     rec_p=None, rec_f1=None)
        todo = []
        for r in main:
            if r["error"] is None and r["sample"] is not None and r["response"] is not None:
                todo.append(r)
            else:
                _fail(r, "response_error", r["error"])
        if not todo:
            return
        step_judge, score_judge = self._judge("step"), self._judge("score")
        answers, attempts = self._ask(step_judge, [self.step_request(r) for r in todo])
        staged: list[tuple[dict[str, Any], list[Path]]] = []
        for r, answer, n in zip(todo, answers, attempts):
            _book(r, "step", answer, n)
            if not answer.ok:
                _fail(r, failure_kind("step", answer.error or ""), answer.error)
                continue
            r["step_text"] = answer.text
            r["steps"] = S.parse_steps(answer.text)
            if r["steps"] is None:
                _fail(r, "step_unparsed", "no 'Step 1: ... Step N:' items in the step judge's answer")
                continue
            try:
                staged.append((r, self._clip_frames(r["sample"])))
            except MediaError as exc:
                _fail(r, "frames_error", str(exc))
        answers, attempts = self._ask(score_judge, [self.score_request(r, f) for r, f in staged])
        for (r, _), answer, n in zip(staged, answers, attempts):
            _book(r, "score", answer, n)
            if not answer.ok:
                _fail(r, failure_kind("score", answer.error or ""), answer.error)
                continue
            r["score_text"] = answer.text
            self._rate(r)

    def _rate(self, row: dict[str, Any]) -> None:
        """Strict and upstream ratings of one judged row (§4.2 stage 3)."""
        gold, steps = row["sample"].metadata["gold"], row["steps"]
        k = len(gold) if self.rule.multi_label else None
        upstream = S.parse_score_upstream(row["score_text"], self.rule.multi_label)
        parsed = S.parse_score(row["score_text"], len(steps), k)
        if parsed.ratings is None:
            _fail(row, parsed.reason, row["score_text"])
        else:
            rec, rea = S.rec_rea(parsed.ratings)
            row.update(rec=rec, rea=rea, cot=S.cot(rec, rea, float(self.scoring["alpha"])), pred=steps[-1],
                       correct=rec == 1.0)
            if k is not None:
                predicted = S.predicted_labels(steps[-1], row["sample"].metadata["label_set"])
                precision, f1 = S.multilabel_precision(parsed.correct_labels or 0, k, len(predicted))
                row.update(ml_predicted=predicted, rec_p=precision, rec_f1=f1)
        if upstream:
            rec, rea = S.rec_rea(upstream)
            row.update(rec_upstream=rec, rea_upstream=rea, steps_upstream=len(upstream))
        pooled = S.parse_score_upstream(row["score_text"], multi_label=True)
        if pooled:
            row.update(zip(("rec_pooled", "rea_pooled"), S.rec_rea(pooled)))

    def paired_metrics(self) -> list[PairedMetric]:
        """CoT-S (×100) as the mean of per-sample scores in the strict mode (a failure scores 0), which reliance
        pairs; each variant's reported metrics come from the selected mode (`variant_details`)."""
        return [PairedMetric("CoT-S", lambda rows: 100 * np.array([r.get("cot") or 0.0 for r in rows], float),
                             lambda u, idx: u[idx].mean(axis=-1))]

    def prediction(self, row: dict[str, Any]) -> Any:
        """Whether the judge rated the emotion right (Rec), which reliance compares for the flip rate."""
        return row.get("rec") or 0.0

    def variant_details(self, rows: list[dict[str, Any]], resamples: int, seed: int) -> dict[str, Any]:
        """Metrics of the selected mode (×100, bootstrap CIs), both modes with their sums for pooling, failures by
        reason, retries, judge tokens, per-corpus means."""
        return self._variant(rows, resamples, seed)

    def task_details(self, rows: list[dict[str, Any]], results: dict[str, Any], resamples: int,
                     seed: int) -> dict[str, Any]:
        """The task's protocol settings and whether its judges make it comparable with published numbers."""
        failures = sum(v["failed"] for v in results["variants"].values())
        identities = {role: self._judge_ids.get(role, "<none>") for role in ROLES}
        return {"mme": {"task": self.rule.name, "mode": self.mode, "published_n": self.rule.size,
                        "alpha": float(self.scoring["alpha"])},
                "judges": S.judge_comparability(identities, self.mode, failures)}

    def _variant(self, cells: list[dict[str, Any]], resamples: int, seed: int) -> dict[str, Any]:
        """One variant's block: both modes, failures by reason, retries, judge tokens, per-corpus means."""
        alpha = float(self.scoring["alpha"])
        strict = [(c.get("rec") or 0.0, c.get("rea") or 0.0, None if c.get("mme_failure") else len(c["steps"]))
                  for c in cells]
        upstream = [(c["rec_upstream"], c["rea_upstream"], c["steps_upstream"]) for c in cells
                    if c.get("rec_upstream") is not None]
        modes = {"strict": _mode_block(strict, len(cells), alpha, resamples, seed),
                 "upstream": _mode_block(upstream, len(cells), alpha, resamples, seed)}
        pooled = [(c["rec_pooled"], c["rea_pooled"]) for c in cells if c.get("rec_pooled") is not None]
        modes["upstream"]["pool"] = {"n": len(pooled), "sum_rec": float(sum(p[0] for p in pooled)),
                                     "sum_rea": float(sum(p[1] for p in pooled))}
        if self.rule.multi_label:
            for key, name in (("rec_p", "Rec-P"), ("rec_f1", "Rec-F1")):
                values = np.array([c.get(key) or 0.0 for c in cells]) * 100
                modes["strict"]["metrics"][name] = M.mean_estimate(values, resamples, seed).to_dict()
        reasons = Counter(c["mme_failure"] for c in cells if c.get("mme_failure"))
        attempts = {role: sum(max(c.get("judge_attempts", {}).get(role, 0) - 1, 0) for c in cells) for role in ROLES}
        tokens = {role: {side: sum(c.get("judge_tokens", {}).get(role, (0, 0))[j] for c in cells)
                         for j, side in enumerate(("prompt_tokens", "completion_tokens"))} for role in ROLES}
        return {"n": len(cells), "failed": sum(reasons.values()), "failures": dict(sorted(reasons.items())),
                "anomalies": {"upstream_scored_strict_failed": sum(1 for c in cells if c.get("mme_failure")
                                                                   and c.get("rec_upstream") is not None)},
                "retries": attempts, "judge_tokens": tokens, "metrics": modes[self.mode]["metrics"],
                "modes": modes, "by_corpus": self._by_corpus(cells)}

    def _by_corpus(self, cells: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
        """Rec-S / Rea-S per source corpus in the selected mode (ER-Wild, SA and ML-ER mix corpora)."""
        groups: dict[str, list[dict[str, Any]]] = {}
        for c in cells:
            if c.get("sample") is not None:
                groups.setdefault(c["sample"].metadata["corpus"], []).append(c)
        key = ("rec", "rea") if self.mode == "strict" else ("rec_upstream", "rea_upstream")
        out = {}
        for corpus, members in sorted(groups.items()):
            scored = [m for m in members if m.get(key[0]) is not None]
            out[corpus] = {"n": len(members), "n_scored": len(scored),
                           "Rec-S": 100 * float(np.mean([m[key[0]] for m in scored])) if scored else float("nan"),
                           "Rea-S": 100 * float(np.mean([m[key[1]] for m in scored])) if scored else float("nan")}
        return out

    def group_metrics(self, aggregates: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """The published overall: Rec-S / Rea-S pooled over every sample of the member tasks (a task-size
        weighted mean), CoT-S from them, per variant and mode; `mean` becomes the pooled CoT-S. The upstream
        mode pools with the Overall script's parser (any `n/m` on every task, `eval_cot/Overall/metrics`)."""
        if not aggregates or not all("mme" in a for a in aggregates.values()):
            return {}
        shared = set.intersection(*(set(a["variants"]) for a in aggregates.values()))
        overall: dict[str, dict[str, Any]] = {}
        for variant in sorted(shared):
            overall[variant] = {}
            for mode in S.MODES:
                blocks = [a["variants"][variant]["modes"][mode] for a in aggregates.values()]
                pools = [b.get("pool") or {"n": b["n_scored"], "sum_rec": b["sum_rec"], "sum_rea": b["sum_rea"]}
                         for b in blocks]
                n = sum(p["n"] for p in pools)
                total = sum(b["n_scored"] + b["n_skipped"] for b in blocks)
                rec = 100 * sum(p["sum_rec"] for p in pools) / n if n else float("nan")
                rea = 100 * sum(p["sum_rea"] for p in pools) / n if n else float("nan")
                overall[variant][mode] = {"n_scored": n, "n_skipped": total - n, "Rec-S": rec, "Rea-S": rea,
                                          "CoT-S": S.cot(rec, rea, self.scoring["alpha"])}
        head = overall.get(FULL.name, {}).get(self.mode, {})
        return {"overall": overall, "mode": self.mode, "mean": head.get("CoT-S"),
                "aggregation": "CoT-S pooled over all samples (task-size weighted), benchmarks.md §4.2",
                "comparable": all(a["judges"]["comparable"] for a in aggregates.values()),
                "failed": sum(v["failed"] for a in aggregates.values() for v in a["variants"].values())}


def _fail(row: dict[str, Any], reason: str | None, detail: Any) -> None:
    """Record a counted failure: strict scores are 0, no upstream score (upstream drops the sample)."""
    row.update(mme_failure=reason, mme_detail=None if detail is None else str(detail)[:2000], rec=0.0, rea=0.0,
               cot=0.0, rec_p=None, rec_f1=None, correct=False)


def _book(row: dict[str, Any], role: str, answer: Response, attempts: int) -> None:
    """Record the attempts and the final answer's tokens of one judge role on a row."""
    row["judge_attempts"][role] = attempts
    row["judge_tokens"][role] = (answer.prompt_tokens, answer.completion_tokens)


def _mode_block(scored: list[tuple[float, float, int | None]], n: int, alpha: float, resamples: int,
                seed: int) -> dict[str, Any]:
    """One mode's means (×100, bootstrap CIs) over its scored samples, with the sums the group pools."""
    rec = np.array([s[0] for s in scored], float)
    rea = np.array([s[1] for s in scored], float)
    metrics = {"Rec-S": M.mean_estimate(rec * 100, resamples, seed).to_dict(),
               "Rea-S": M.mean_estimate(rea * 100, resamples, seed).to_dict(),
               "CoT-S": M.mean_estimate(S.cot(rec, rea, alpha) * 100, resamples, seed).to_dict()}
    steps = [s[2] for s in scored if s[2] is not None]
    return {"n_scored": len(scored), "n_skipped": n - len(scored), "sum_rec": float(rec.sum()),
            "sum_rea": float(rea.sum()), "avg_steps": float(np.mean(steps)) if steps else float("nan"),
            "metrics": metrics}
