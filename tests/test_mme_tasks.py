"""MME-Emotion through the harness: the released annotation files, clip lookup (the ER-Lab path defect
fixed), the judge's frames, the prompts, and the judged pipeline end to end on CPU with scripted and
replayed judges: per-sample scores by hand, every judge failure counted, strict and upstream modes,
the pooled overall, judge cost accounting and the token budget."""

import base64
import io
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import replace
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_fixture
from PIL import Image

from mepbench.aggregation import task_results
from mepbench.backends.scripted import ScriptedBackend
from mepbench.judges import JudgeLedger, metered
from mepbench.masking import FULL, MaskMode
from mepbench.runner import EvalConfig, make_context, run_eval
from mepbench.scoring import mme as S
from mepbench.synth import generate_suite
from mepbench.tasks import TaskContext, TaskRegistry
from mepbench.tasks.mme_data import find_video, has_audio_stream, judge_frames, load_mme_emotion
from mepbench.types import ImagePart, Response

DATASET = ("mme_emotion", "MME-Emotion-Dataset")
COUNTS = {"ER-Lab": 6, "ML-ER": 2, "ER-Wild": 1, "Noise-ER": 1, "FG-ER": 1, "SA": 1, "FG-SA": 1, "IR": 1}
ANSWER = "She frowns and her voice is sharp, so she is upset. Answer: Anger"


def _task_name(task: str) -> str:
    return f"mme-emotion-{task.lower()}"


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    """A dataset folder in the released layout: the first entries of every task's real question and audio-clue
    files, each with a real generated clip. One ER-Lab clip is stored as upstream's renamed `<id>.mp4.mp4`,
    the CAER clip (`.avi` in the JSON) as `.mp4`."""
    src = shared_fixture(*DATASET)
    tmp = tmp_path_factory.mktemp("mme")
    root = tmp / "data"
    clips = iter(sorted((generate_suite(tmp / "suite", n=sum(COUNTS.values()), seed=3) / "clips").glob("*.mp4")))
    ids: dict[str, list[str]] = {}
    for task, n in COUNTS.items():
        stem = task.replace("-", "_")
        entries = json.loads((src / task / "question" / f"{stem}.json").read_text())[:n]
        ids[task] = [e["video_id"] for e in entries]
        clues = [c for c in json.loads((src / task / "audio_clue" / f"{stem}_qwen2_audio_clues.json").read_text())
                 if c["video_id"] in ids[task]]
        for kind, name, data in (("question", f"{stem}.json", entries),
                                 ("audio_clue", f"{stem}_qwen2_audio_clues.json", clues)):
            (root / "MME-Emotion-Dataset" / task / kind).mkdir(parents=True, exist_ok=True)
            (root / "MME-Emotion-Dataset" / task / kind / name).write_text(json.dumps(data))
        for vid in ids[task]:
            target = root / task / vid
            if task == "ER-Lab" and vid == ids[task][1]:
                target = target.with_name(target.name + ".mp4")
            if vid.endswith(".avi"):
                target = target.with_suffix(".mp4")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(next(clips), target)
    return root, ids


class Judge(ScriptedBackend):
    """A scripted step and score judge. By default it splits every answer into two steps and rates them all
    correct (C/K = K/K on FG-ER / ML-ER, read from the prompt); `steps` / `scores` script answers by sample id,
    `flaky` ids fail on their first step call, `timeouts` ids always time out on the score call."""

    def __init__(self, steps=None, scores=None, flaky=(), timeouts=(), raises=False):
        super().__init__()
        self.steps, self.scores = steps or {}, scores or {}
        self.flaky, self.timeouts, self.raises = set(flaky), set(timeouts), raises
        self.seen: Counter = Counter()

    def describe(self):
        return {"backend": "scripted", "model": "scripted-judge"}

    def _answer(self, r):
        stage = "step" if r.variant.startswith("mme-step") else "score"
        self.seen[(r.sample_id, stage)] += 1
        if stage == "step" and r.sample_id in self.flaky and self.seen[(r.sample_id, stage)] == 1:
            return Response(error="HTTP 502 from the judge endpoint")
        if stage == "step":
            return Response(text=self.steps.get(r.sample_id, "<step>Step 1: Notice the frown. Step 2: The "
                                                             "predicted emotion is anger.</step>"),
                            prompt_tokens=120, completion_tokens=30)
        if r.sample_id in self.timeouts:
            return Response(error="Request timed out after 120 s")
        prompt = r.messages[-1].text()
        n = int(re.search(r"with N = (\d+)", prompt).group(1))
        k = re.search(r"C/(\d+)</score>", prompt)
        last = f"{k.group(1)}/{k.group(1)}" if k else "1/1"
        default = "<score>" + ", ".join([f"Step {i}: 1/1" for i in range(1, n)] + [f"Step {n}: {last}"]) + "</score>"
        return Response(text=self.scores.get(r.sample_id, default), prompt_tokens=900, completion_tokens=20)

    def generate(self, requests):
        self.asked.extend(requests)
        if self.raises:
            raise RuntimeError("judge crashed")
        return [self._answer(r) for r in requests]


def _run(root, tasks, judge, tmp_path, mode="strict", model=None, limit=None):
    config = EvalConfig(tasks=tasks, data_root=root, cache_dir=tmp_path / "cache", task_args={"*": {"mode": mode}}, limit=limit,
                        bootstrap=50)
    model = model or ScriptedBackend(answer=ANSWER)
    context = replace(make_context(config, model), judges={"step": judge, "score": judge})
    return run_eval(config, backend=model, context=context), model


def test_loader_reads_every_released_entry(tmp_path):
    context = TaskContext(shared_fixture("mme_emotion"), tmp_path, media_required=False)
    loaded = {t: load_mme_emotion(context, t) for t in S.TASK_ORDER}
    assert {t: len(r.samples) for t, r in loaded.items()} == {t: S.RULES[t].size for t in S.TASK_ORDER}
    assert not any(r.errors for r in loaded.values())
    assert Counter(s.label for s in loaded["ER-Lab"].samples) == {
        "Frustration": 120, "Neutral": 89, "Excited": 83, "Sadness": 72, "Anger": 53, "Happiness": 39, "Fear": 22,
        "Surprise": 19, "Other": 3}
    assert Counter(s.label for s in loaded["SA"].samples) == {"negative": 628, "positive": 576, "neutral": 396}
    assert Counter(s.metadata["corpus"] for s in loaded["ER-Wild"].samples) == {
        c: 300 for c in ("CAER", "MC-EIU", "E3", "MELD", "MAFW", "DFEW")}
    assert Counter(s.metadata["corpus"] for s in loaded["ML-ER"].samples) == {"MAFW": 300, "CMU-MOSEI": 300}
    assert Counter(len(s.metadata["gold"]) for s in loaded["FG-ER"].samples)[1] == 258
    first = loaded["ML-ER"].samples[0]
    assert first.id == "MAFW/video/03419.mp4" and first.metadata["gold"] == ["anger", "disgust"]
    assert first.video is None and first.audio is None and first.metadata["audio_clue"].startswith("The speaker")
    strict = load_mme_emotion(TaskContext(shared_fixture("mme_emotion"), tmp_path), "ER-Lab", limit=2)
    assert strict.samples[0].video == str(shared_fixture("mme_emotion") / "ER-Lab" / strict.samples[0].id), \
        "a missing clip stays as its path so the run names it"


def test_clip_lookup_fixes_the_er_lab_path_defect(mini):
    root, ids = mini
    context = TaskContext(root, root / "cache")
    lab = load_mme_emotion(context, "ER-Lab").samples
    assert lab[1].video == str(root / "ER-Lab" / (ids["ER-Lab"][1] + ".mp4")), "upstream's renamed copy is found"
    assert lab[0].video == str(root / "ER-Lab" / ids["ER-Lab"][0]), "the released video_id is opened as is"
    assert all(s.audio == s.video for s in lab), "the clip's own audio track is the audio part"
    wild = load_mme_emotion(context, "ER-Wild").samples[0]
    assert wild.id.endswith(".avi") and wild.video.endswith(".mp4"), "another container of the same clip is found"
    assert load_mme_emotion(context, "IR").samples[0].video.endswith(".mkv")
    assert find_video([root / "ER-Lab"], "IEMOCAP/video/nope.mp4") is None


def test_bad_entries_become_errors_naming_file_and_field(tmp_path):
    folder = tmp_path / "SA"
    for kind in ("question", "audio_clue"):
        (folder / kind).mkdir(parents=True)
    entries = [{"video_id": "a.mp4", "label": "positive", "label_set": ["positive", "negative"]},
               {"video_id": "b.mp4", "label": "joy", "label_set": ["positive", "negative"]},
               {"video_id": "c.mp4", "label": "positive", "label_set": ["positive"]},
               {"label": "positive", "label_set": ["positive"]}]
    (folder / "question" / "SA.json").write_text(json.dumps(entries))
    clues = [{"video_id": v, "audio_clue": "calm voice"} for v in ("a.mp4", "b.mp4")]
    (folder / "audio_clue" / "SA_qwen2_audio_clues.json").write_text(json.dumps(clues))
    loaded = load_mme_emotion(TaskContext(tmp_path, tmp_path, media_required=False), "SA")
    assert [s.id for s in loaded.samples] == ["a.mp4"]
    assert [(e.sample_id, e.field) for e in loaded.errors] == [("b.mp4", "label"), ("c.mp4", "audio_clue"),
                                                              ("", "video_id")]
    assert "SA.json" in str(loaded.errors[0]) and "entry 3" in str(loaded.errors[2])
    with pytest.raises(FileNotFoundError, match="IR question file not found"):
        load_mme_emotion(TaskContext(tmp_path, tmp_path), "IR")
    with pytest.raises(FileNotFoundError, match="needs --data-root"):
        load_mme_emotion(TaskContext(None, tmp_path), "SA")


def _gray_clip(path: Path, rate: Fraction, frames: int) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=rate, options={"crf": "0"})
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            image = np.full((32, 32, 3), min(i, 255), np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())


def test_judge_frames_are_every_floor_fps_th_frame_first_ten(tmp_path):
    _gray_clip(tmp_path / "a.mp4", Fraction(25), 80)
    frames = judge_frames(tmp_path / "a.mp4", tmp_path / "cache")
    levels = [float(np.asarray(Image.open(f)).mean()) for f in frames]
    assert [f.suffix for f in frames] == [".jpg"] * 4 and levels == pytest.approx([0, 25, 50, 75], abs=3)
    _gray_clip(tmp_path / "b.mp4", Fraction(30000, 1001), 400)
    frames = judge_frames(tmp_path / "b.mp4", tmp_path / "cache")
    levels = [float(np.asarray(Image.open(f)).mean()) for f in frames]
    assert levels == pytest.approx([29 * i for i in range(9)] + [255], abs=3), "⌊29.97⌋ = 29, first 10 kept"
    assert judge_frames(tmp_path / "b.mp4", tmp_path / "cache") == frames, "written once per clip"
    assert not has_audio_stream(tmp_path / "a.mp4"), "a silent clip gets no audio part"
    (tmp_path / "bad.mp4").write_bytes(b"\x00" * 64)
    with pytest.raises(Exception, match="bad.mp4"):
        judge_frames(tmp_path / "bad.mp4", tmp_path / "cache")


def test_prompts_list_the_label_set_and_keep_the_judge_rules(mini, tmp_path):
    root, _ = mini
    registry = TaskRegistry()
    context = TaskContext(root, tmp_path)
    ml = registry.create("mme-emotion-ml-er", context)
    sample = ml.load().samples[0]
    request = ml.build_request(sample, FULL, MaskMode.DROP)
    user = request.messages[-1]
    assert [p.type for p in user.content] == ["video", "audio", "text"]
    assert ", ".join(sample.metadata["label_set"]) in user.text() and "Choose every label that applies" in user.text()
    row = {"sample": sample, "sample_id": sample.id, "variant": "full", "response": Response(text=ANSWER),
           "steps": ["Notice the frown.", "The predicted emotions are anger, fear."]}
    step = ml.step_request(row)
    assert step.variant == "mme-step" and ANSWER in step.messages[-1].text()
    assert "contempt" not in step.messages[-1].text(), "the step judge never sees the label set (as upstream)"
    score = ml.score_request(row, [Path("/f/000.jpg"), Path("/f/001.jpg")])
    text = score.messages[-1].text()
    assert [p.type for p in score.messages[-1].content] == ["text", "image", "image"] and score.variant == "mme-score"
    assert "C/2</score>" in text and "Predicting extra labels is not penalised" in text and "3/3" in text
    assert "- Emotion labels: anger, disgust" in text
    assert sample.metadata["audio_clue"] in text and "Step 2: The predicted emotions are anger, fear." in text
    assert score.params.temperature == 0.0 and step.params.temperature == 0.0
    fg_sa = registry.create("mme-emotion-fg-sa", context)
    sa_row = {**row, "sample": fg_sa.load().samples[0], "steps": ["The predicted sentiment is positive."]}
    sa_text = fg_sa.score_request(sa_row, []).messages[-1].text()
    assert "prediction positive, label strong positive -> 0/1" in sa_text
    assert "-> 1/1" not in sa_text, "upstream's contradictory FG-SA example 3 is removed"
    assert "attached" not in sa_text, "no frames, no mention of frames"
    upstream = registry.create("mme-emotion-ml-er", context, {"mode": "upstream"})
    assert upstream.fingerprint() != ml.fingerprint() and upstream.metrics == ("Rec-S", "Rea-S", "CoT-S")
    assert ml.metrics == ("Rec-S", "Rea-S", "CoT-S", "Rec-P", "Rec-F1")


def test_judged_pipeline_by_hand(mini, tmp_path):
    root, ids = mini
    lab, ml = ids["ER-Lab"], ids["ML-ER"]
    judge = Judge(
        steps={lab[0]: "<step>Step 1: Frown. Step 2: Sharp voice. Step 3: The predicted emotion is Anger.</step>",
               lab[1]: "Step 1: The predicted emotion is Neutral.",
               ml[0]: "<step>Step 1: Tense face. Step 2: The predicted emotions are anger, disgust, fear, "
                      "sadness.</step>",
               ml[1]: "<step>Step 1: The predicted emotion is happy.</step>"},
        scores={lab[0]: "<score>Step 1: 1/1, Step 2: 0/1, Step 3: 1/1</score>",
                lab[1]: "<score>Step 1: 0/1</score>", ml[0]: "<score>Step 1: 1/1, Step 2: 2/2</score>",
                ml[1]: "<score>Step 1: 0/2</score>"})
    out, model = _run(root, ["mme-emotion-er-lab", "mme-emotion-ml-er"], judge, tmp_path, limit=3)
    rows = {r["sample_id"]: r for r in out.rows}
    # by hand: ER-Lab (1, 0.5), (0, 0), (1, 1) -> Rec-S 66.67, Rea-S 50, CoT-S 58.33
    assert [(rows[i]["rec"], rows[i]["rea"]) for i in lab[:3]] == [(1.0, 0.5), (0.0, 0.0), (1.0, 1.0)]
    metrics = out.tasks["mme-emotion-er-lab"]["variants"]["full"]["metrics"]
    assert {k: round(v["value"], 2) for k, v in metrics.items()} == {"Rec-S": 66.67, "Rea-S": 50.0, "CoT-S": 58.33}
    # ML-ER: 2/2 with four predicted labels -> Rec 1, precision 2/4, F1 2/3; 0/2 -> all 0
    assert (rows[ml[0]]["rec"], rows[ml[0]]["rea"], rows[ml[0]]["rec_p"]) == (1.0, 1.0, 0.5)
    assert rows[ml[0]]["rec_f1"] == pytest.approx(2 / 3) and rows[ml[0]]["ml_predicted"] == [
        "fear", "disgust", "sadness", "anger"]
    assert (rows[ml[1]]["rec"], rows[ml[1]]["rea"], rows[ml[1]]["rec_f1"]) == (0.0, 0.0, 0.0)
    ml_metrics = out.tasks["mme-emotion-ml-er"]["variants"]["full"]["metrics"]
    assert ml_metrics["Rec-S"]["value"] == 50.0 and ml_metrics["Rec-P"]["value"] == 25.0
    assert ml_metrics["Rec-F1"]["value"] == pytest.approx(100 / 3)
    score_requests = [r for r in judge.asked if r.variant == "mme-score"]
    images = [p for p in score_requests[0].messages[-1].content if isinstance(p, ImagePart)]
    assert 1 <= len(images) <= 10 and all(Path(p.path).is_file() and p.path.endswith(".jpg") for p in images)
    assert str(tmp_path / "cache" / "mme-frames") in images[0].path
    assert all(r.params.temperature == 0.0 for r in judge.asked) and len(judge.asked) == 10
    agg = out.tasks["mme-emotion-er-lab"]
    assert agg["judges"]["judges"] == {"step": "scripted-judge", "score": "scripted-judge"}
    assert not agg["judges"]["comparable"] and agg["primary_metric"] == "CoT-S" and agg["scale"] == 100
    assert agg["variants"]["full"]["judge_tokens"]["score"] == {"prompt_tokens": 2700, "completion_tokens": 60}
    assert agg["variants"]["full"]["modes"]["strict"]["avg_steps"] == pytest.approx(2.0)
    assert {r.messages[-1].content[0].path for r in model.asked} == {rows[i]["sample"].video for i in lab[:3] + ml[:2]}


def test_every_judge_failure_is_counted_never_dropped(mini, tmp_path):
    root, ids = mini
    lab = ids["ER-Lab"]
    three = "<step>Step 1: a. Step 2: b. Step 3: The predicted emotion is Anger.</step>"
    judge = Judge(steps={lab[0]: three, lab[1]: "I cannot split this answer.", lab[3]: three, lab[4]: three},
                  scores={lab[0]: "<score>Step 1: 1/1, Step 2: 0/1, Step 3: 1/1</score>",
                          lab[3]: "<score>Step 1: 1, Step 2: 1, Step 3: 1</score>",
                          lab[4]: "<score>Step 1: 1/1, Step 2: 1/1</score>"},
                  flaky={lab[0]}, timeouts={lab[2]})
    model = ScriptedBackend(answer=ANSWER, fail_ids=frozenset({lab[5]}))
    out, _ = _run(root, ["mme-emotion-er-lab"], judge, tmp_path, model=model)
    rows = {r["sample_id"]: r for r in out.rows}
    assert [rows[i]["mme_failure"] for i in lab] == [None, "step_unparsed", "score_timeout", "score_malformed",
                                                      "count_mismatch", "response_error"]
    assert rows[lab[0]]["judge_attempts"] == {"step": 2, "score": 1}, "a failed call is retried and then scored"
    assert rows[lab[2]]["judge_attempts"]["score"] == 4, "three retries, then a counted timeout"
    variant = out.tasks["mme-emotion-er-lab"]["variants"]["full"]
    assert variant["n"] == 6 and variant["failed"] == 5 and variant["retries"] == {"step": 1, "score": 3}
    assert variant["failures"] == {"count_mismatch": 1, "response_error": 1, "score_malformed": 1,
                                   "score_timeout": 1, "step_unparsed": 1}
    strict, upstream = variant["modes"]["strict"], variant["modes"]["upstream"]
    assert (strict["n_scored"], strict["n_skipped"]) == (6, 0), "strict: every sample in the denominator"
    assert strict["metrics"]["Rec-S"]["value"] == pytest.approx(100 / 6)
    assert strict["metrics"]["Rea-S"]["value"] == pytest.approx(50 / 6)
    # upstream scores lab[0] (1, 0.5) and the count mismatch lab[4] (1, 1); the rest is dropped
    assert (upstream["n_scored"], upstream["n_skipped"]) == (2, 4)
    assert upstream["metrics"]["Rec-S"]["value"] == 100.0 and upstream["metrics"]["Rea-S"]["value"] == 75.0
    assert variant["anomalies"] == {"upstream_scored_strict_failed": 1}
    assert variant["metrics"] == strict["metrics"]
    again, _ = _run(root, ["mme-emotion-er-lab"], Judge(steps=judge.steps, scores=judge.scores, timeouts={lab[2]}),
                    tmp_path, mode="upstream", model=ScriptedBackend(answer=ANSWER, fail_ids=frozenset({lab[5]})))
    headline = again.tasks["mme-emotion-er-lab"]["variants"]["full"]
    assert headline["metrics"]["Rec-S"]["value"] == 100.0 and headline["failed"] == 5
    assert again.tasks["mme-emotion-er-lab"]["mme"]["mode"] == "upstream"


def test_a_crashing_judge_is_a_counted_failure(mini, tmp_path):
    root, _ = mini
    out, _ = _run(root, ["mme-emotion-sa"], Judge(raises=True), tmp_path)
    variant = out.tasks["mme-emotion-sa"]["variants"]["full"]
    assert variant["failures"] == {"step_error": 1} and variant["metrics"]["CoT-S"]["value"] == 0.0
    assert "judge crashed" in out.rows[0]["mme_detail"]
    config = EvalConfig(tasks=["mme-emotion-sa"], data_root=root, cache_dir=tmp_path / "c2")
    model = ScriptedBackend(answer=ANSWER)
    with pytest.raises(ValueError, match="needs --judge step=MODEL and --judge score=MODEL"):
        run_eval(config, backend=model, context=replace(make_context(config, model), judges={}))


def test_the_token_budget_ends_in_counted_failures(mini, tmp_path):
    root, _ = mini
    ledger = JudgeLedger(max_tokens=900)  # the six step calls spend exactly 900 tokens
    judge = Judge()
    config = EvalConfig(tasks=["mme-emotion-er-lab"], data_root=root, cache_dir=tmp_path / "cache", bootstrap=20)
    model = ScriptedBackend(answer=ANSWER)
    context = replace(make_context(config, model), judge_ledger=ledger,
                      judges={"step": metered(judge, "step", ledger), "score": metered(judge, "score", ledger)})
    out = run_eval(config, backend=model, context=context)
    variant = out.tasks["mme-emotion-er-lab"]["variants"]["full"]
    assert variant["failures"] == {"judge_budget": 6} and variant["modes"]["strict"]["n_scored"] == 6
    usage = out.tasks["mme-emotion-er-lab"]["judge_usage"]
    assert usage["step"]["fresh"] == 6 and usage["score"]["refused"] == 6, "refusals are not retried"
    assert out.stats["judge_prompt_tokens"] == 720 and out.stats["judge_refused"] == 6


def test_group_pools_samples_like_the_published_overall(mini, tmp_path):
    root, ids = mini
    judge = Judge(scores={ids["ER-Lab"][0]: "<score>Step 1: 1/1, Step 2: 0/1</score>",
                          ids["SA"][0]: "<score>Step 1: 0/1, Step 2: 0/1</score>"})
    out, _ = _run(root, ["mme-emotion"], judge, tmp_path)
    rows = [r for r in out.rows if r["variant"] == "full"]
    assert len(rows) == sum(COUNTS.values()) and not any(r["mme_failure"] for r in rows)
    group = out.groups["mme-emotion"]
    pooled = group["overall"]["full"]["strict"]
    assert pooled["n_scored"] == 14
    assert pooled["Rec-S"] == pytest.approx(100 * 12 / 14) and pooled["Rea-S"] == pytest.approx(100 * 13 / 14)
    per_task = {out.tasks[_task_name(t)]["mme"]["task"]: {"Rec-S": out.tasks[_task_name(t)]["variants"]["full"][
        "metrics"]["Rec-S"]["value"], "Rea-S": out.tasks[_task_name(t)]["variants"]["full"]["metrics"]["Rea-S"][
        "value"], "n": COUNTS[t]} for t in COUNTS}
    assert S.overall_from_tasks(per_task)["CoT-S"] == pytest.approx(pooled["CoT-S"]) == pytest.approx(group["mean"])
    assert group["mode"] == "strict" and group["comparable"] is False and group["failed"] == 0


def test_upstream_overall_pools_with_the_overall_scripts_parser(mini, tmp_path):
    """Upstream parses single-label tasks with `: d/1` but the Overall script with any `n/m`: a `1/2` rating is
    invisible to the SA score and counts 0.5 in the overall (benchmarks.md §4.2); strict calls it malformed."""
    root, ids = mini
    judge = Judge(scores={ids["SA"][0]: "<score>Step 1: 1/1, Step 2: 1/2</score>"})
    out, _ = _run(root, ["mme-emotion"], judge, tmp_path, mode="upstream")
    sa = out.tasks["mme-emotion-sa"]["variants"]["full"]
    assert sa["failures"] == {"score_malformed": 1}
    assert (sa["metrics"]["Rec-S"]["value"], sa["metrics"]["Rea-S"]["value"]) == (100.0, 0.0), "reads [1/1] only"
    overall = out.groups["mme-emotion"]["overall"]["full"]
    assert overall["upstream"]["n_scored"] == 14 and overall["upstream"]["Rec-S"] == pytest.approx(100 * 13.5 / 14)
    assert overall["upstream"]["Rea-S"] == pytest.approx(100.0)
    assert overall["strict"]["Rec-S"] == pytest.approx(100 * 13 / 14)


def test_pooled_rows_reproduce_a_published_overall(tmp_path):
    """Per-sample rows holding each task's published Rec / Rea, pooled by the group: the published overall."""
    board = json.loads(shared_fixture("mme_emotion", "expected", "leaderboard_from_figures.json").read_text())
    row = board["Gemini-2.5-Pro"]
    registry, context = TaskRegistry(), TaskContext(None, tmp_path)
    aggregates = {}
    for i, task in enumerate(S.TASK_ORDER):
        rec, rea = row["Rec-S"][i] / 100, row["Rea-S"][i] / 100
        rows = [{"item": "", "variant": "full", "sample_id": f"{task}-{j}", "sample": None, "mme_failure": None,
                 "steps": ["a", "b"], "rec": rec, "rea": rea, "cot": S.cot(rec, rea), "rec_upstream": rec,
                 "rea_upstream": rea, "steps_upstream": 2, "rec_pooled": rec, "rea_pooled": rea}
                for j in range(S.RULES[task].size)]
        name = _task_name(task)
        owner = registry.create(name, context)
        aggregates[name] = task_results(owner, rows, resamples=5)
        assert aggregates[name]["variants"]["full"]["metrics"]["Rec-S"]["value"] == pytest.approx(row["Rec-S"][i])
    overall = owner.group_metrics(aggregates)["overall"]["full"]["upstream"]
    assert overall["n_scored"] == 6500
    for metric in ("Rec-S", "Rea-S", "CoT-S"):
        assert round(overall[metric], 1) == row["overall"][metric]


def _replay_files(folder: Path, ids: dict[str, list[str]]) -> tuple[Path, Path, Path]:
    answers, steps, scores = [], [], []
    for task, vids in ids.items():
        for vid in vids:
            answers.append({"id": vid, "response": ANSWER})
            steps.append({"sample_id": vid, "variant": "mme-step",
                          "response": "<step>Step 1: Frown. Step 2: The predicted label is anger.</step>"})
            last = "2/2" if task == "ML-ER" else "1/1"
            scores.append({"sample_id": vid, "variant": "mme-score", "response": f"<score>Step 1: 1/1, Step 2: "
                                                                                  f"{last}</score>"})
    paths = []
    for name, data in (("answers", answers), ("steps", steps), ("scores", scores)):
        paths.append(folder / f"{name}.jsonl")
        paths[-1].write_text("".join(json.dumps(x) + "\n" for x in data))
    return tuple(paths)


def test_replayed_judges_through_the_judge_registry_with_cost_accounting(mini, tmp_path):
    root, ids = mini
    _, steps, scores = _replay_files(tmp_path, {"ER-Lab": ids["ER-Lab"][:3]})
    config = EvalConfig(tasks=["mme-emotion-er-lab"], data_root=root, cache_dir=tmp_path / "cache", limit=3,
                        judges={"step": f"{steps}@replay", "score": f"{scores}@replay"}, bootstrap=20)
    out = run_eval(config, backend=ScriptedBackend(answer=ANSWER))
    agg = out.tasks["mme-emotion-er-lab"]
    assert agg["variants"]["full"]["metrics"]["CoT-S"]["value"] == 100.0
    assert agg["judge_usage"]["step"]["calls"] == 3 and agg["judge_usage"]["step"]["fresh"] == 3
    assert agg["judges"]["judges"]["score"] == str(scores.resolve()) and not agg["judges"]["comparable"]
    assert any("is not the published 'gpt-4o-2024-11-20'" in n for n in agg["judges"]["notes"])
    again = run_eval(config, backend=ScriptedBackend(answer=ANSWER))
    usage = again.tasks["mme-emotion-er-lab"]["judge_usage"]
    assert usage["score"]["cached"] == 3 and usage["score"]["fresh"] == 0, "judge answers come from the cache"
    assert again.stats["judge_calls"] == 6 and again.stats["judge_cached"] == 6
    broke = run_eval(replace(config, max_judge_tokens=0, cache_dir=tmp_path / "fresh"),
                     backend=ScriptedBackend(answer=ANSWER))
    assert broke.tasks["mme-emotion-er-lab"]["variants"]["full"]["failures"] == {"judge_budget": 3}
    assert broke.stats["judge_refused"] == 3 and broke.stats["judge_fresh"] == 0


def test_cli_runs_the_group_with_replayed_model_and_judges(mini, tmp_path):
    root, ids = mini
    answers, steps, scores = _replay_files(tmp_path, ids)
    done = subprocess.run(
        [str(Path(sys.executable).parent / "mepbench"), "eval", "--backend", "replay", "--model", str(answers),
         "--tasks", "mme-emotion", "--data-root", str(root), "--judge", f"step={steps}@replay", "--judge",
         f"score={scores}@replay", "--task-arg", "mme-emotion.mode=upstream", "--max-judge-tokens", "100000", "--bootstrap", "20",
         "--output-dir", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300, env={**os.environ, "MEPBENCH_CACHE": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr[-3000:]
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    group = saved["groups"]["mme-emotion"]
    assert group["mode"] == "upstream" and group["overall"]["full"]["upstream"]["n_scored"] == 14
    assert group["mean"] == pytest.approx(100.0) and group["comparable"] is False
    assert saved["config"]["task_args"] == {"mme-emotion": {"mode": "upstream"}}
    assert saved["config"]["max_judge_tokens"] == 100000
    assert {t["options"]["mode"] for t in saved["tasks"].values()} == {"upstream"}
    assert saved["stats"]["judge_calls"] == 28
    assert set(saved["metadata"]["task_fingerprints"]) == {_task_name(t) for t in S.TASK_ORDER}
    bad = subprocess.run([str(Path(sys.executable).parent / "mepbench"), "eval", "--tasks", "mme-emotion", "-T",
                          "mode=lenient"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "'lenient' is not one of ['strict', 'upstream']" in bad.stderr + bad.stdout
    assert "Traceback" not in bad.stderr


class ChatStub:
    """A local OpenAI-compatible chat-completions server playing both judges: a step answer for text-only
    requests, all-correct `<score>` ratings (N read from the prompt) for requests with images. It answers
    HTTP 503 once (the backend retries) and stalls past the client timeout on prompts containing `stall`."""

    def __init__(self, stall: str):
        self.stall, self.bodies, self.refused = stall, [], False
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status, answer = stub.answer(self.path, body)
                payload = json.dumps(answer).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Retry-After", "0")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:  # the client gave up on a stalled request
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def answer(self, path, body):
        assert path == "/v1/chat/completions"
        self.bodies.append(body)
        user = body["messages"][-1]["content"]
        text = user if isinstance(user, str) else "".join(p.get("text", "") for p in user)
        if isinstance(user, str):
            content, tokens = "<step>Step 1: Notice the frown. Step 2: The predicted emotion is anger.</step>", 200
        else:
            if self.stall in text:
                time.sleep(0.8)
            elif not self.refused:
                self.refused = True
                return 503, {"error": {"message": "overloaded, retry"}}
            n = int(re.search(r"with N = (\d+)", text).group(1))
            content = "<score>" + ", ".join(f"Step {i}: 1/1" for i in range(1, n + 1)) + "</score>"
            tokens = 1000
        return 200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}],
                     "usage": {"prompt_tokens": tokens, "completion_tokens": 20}}


def test_judges_through_the_openai_backend_against_a_local_server(mini, tmp_path):
    """The published judge ids (`gpt-4.1-2025-04-14` / `gpt-4o-2024-11-20`) served by a local stub through
    the openai backend: frames arrive as JPEG data URLs, a 503 is retried by the backend, a stall becomes a
    counted timeout after every retry, tokens are booked from the server's usage, and the cache spares repeats."""
    root, ids = mini
    lab = ids["ER-Lab"][:3]
    clue = json.loads((root / "MME-Emotion-Dataset" / "ER-Lab" / "audio_clue" / "ER_Lab_qwen2_audio_clues.json")
                      .read_text())
    stub = ChatStub(stall=next(c["audio_clue"] for c in clue if c["video_id"] == lab[2]))
    try:
        config = EvalConfig(tasks=["mme-emotion-er-lab"], data_root=root, cache_dir=tmp_path / "cache", limit=3,
                            task_args={"*": {"mode": "upstream"}}, bootstrap=20,
                            judges={"step": "gpt-4.1-2025-04-14@openai", "score": "gpt-4o-2024-11-20@openai"},
                            judge_args={"base_url": stub.url, "api_key_env": "MEPBENCH_TEST_NO_KEY", "timeout_s": 0.3,
                                        "max_retries": 1, "backoff_s": 0.01})
        out = run_eval(config, backend=ScriptedBackend(answer=ANSWER))
        scores = [b for b in stub.bodies if not isinstance(b["messages"][-1]["content"], str)]
        steps = [b for b in stub.bodies if isinstance(b["messages"][-1]["content"], str)]
        assert len(steps) == 3 and {b["model"] for b in steps} == {"gpt-4.1-2025-04-14"}
        assert len(scores) == 1 + 2 + 4 * 2, "two answers, one 503 retried, the stall: 4 MME attempts x 2 tries"
        assert {b["model"] for b in scores} == {"gpt-4o-2024-11-20"} and all(b["temperature"] == 0 for b in scores)
        images = [p for p in scores[0]["messages"][-1]["content"] if p["type"] == "image_url"]
        frames = judge_frames(load_mme_emotion(TaskContext(root, tmp_path), "ER-Lab").samples[0].video,
                              tmp_path / "cache")
        assert 1 <= len(images) == len(frames) <= 10 and scores[0]["messages"][0]["role"] == "system"
        header, data = images[0]["image_url"]["url"].split(",", 1)
        assert header == "data:image/jpeg;base64" and Image.open(io.BytesIO(base64.b64decode(data))).format == "JPEG"
        agg = out.tasks["mme-emotion-er-lab"]
        variant = agg["variants"]["full"]
        assert variant["failures"] == {"score_timeout": 1} and variant["retries"]["score"] == 3
        assert (variant["modes"]["upstream"]["n_scored"], variant["modes"]["upstream"]["n_skipped"]) == (2, 1)
        assert variant["metrics"]["CoT-S"]["value"] == 100.0
        assert variant["modes"]["strict"]["metrics"]["CoT-S"]["value"] == pytest.approx(200 / 3)
        assert agg["judges"]["judges_match_published"] and agg["judges"]["comparable"]
        usage = agg["judge_usage"]
        assert (usage["step"]["prompt_tokens"], usage["score"]["prompt_tokens"]) == (600, 2000)
        assert usage["score"]["fresh"] == 6 and usage["score"]["errors"] == 4
        before = len(stub.bodies)
        again = run_eval(replace(config, task_args={}), backend=ScriptedBackend(answer=ANSWER))
        assert len(stub.bodies) - before == 4 * 2, "only the failed judgement is asked again"
        judged = again.tasks["mme-emotion-er-lab"]
        assert judged["judges"]["judges_match_published"] and not judged["judges"]["comparable"]
        assert judged["judge_usage"]["score"]["cached"] == 2
    finally:
        stub.server.shutdown()
        stub.server.server_close()
