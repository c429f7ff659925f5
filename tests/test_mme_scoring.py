"""MME-Emotion scoring (benchmarks.md §4.2): step and `<score>` parsing in both modes, Rec / Rea / CoT by
hand, the C/K rule with its precision-aware companion, the published overall rows recomputed from the
per-task rows, judge comparability, and the judge token budget."""

import json

import pytest

from conftest import shared_fixture
from mepbench.backends.scripted import ScriptedBackend
from mepbench.judges import BUDGET_EXHAUSTED, JudgeLedger, judge_scope, metered
from mepbench.scoring import mme as S
from mepbench.types import Message, Request, Response, TextPart


def test_steps_come_from_the_last_step_block_numbered_from_one():
    text = ("Sure.\n<step>Step 1: Observe the frown. Step 2: Hear the raised voice.\nStep 3: The predicted emotion is "
            "anger.</step>")
    assert S.parse_steps(text) == ["Observe the frown.", "Hear the raised voice.", "The predicted emotion is anger."]
    assert S.parse_steps("Step 1: The predicted emotion is happy.") == ["The predicted emotion is happy."]
    assert S.parse_steps("<step>Step 1: a</step> then <step>Step 1: b. Step 2: c</step>") == ["b.", "c"]
    assert S.parse_steps("The predicted emotion is happy.") is None
    assert S.parse_steps("<step>Step 1: a. Step 3: b</step>") is None
    assert S.parse_steps("Step 1: a. Step 2: b. Step 3: as in Step 1: so c.") == ["a.", "b.", "as in Step 1: so c."]
    assert S.format_steps(["a", "b"]) == "Step 1: a\nStep 2: b"


def test_per_sample_rec_and_rea_by_hand():
    four = S.parse_score("<score>Step 1: 1/1, Step 2: 0/1, Step 3: 1/1, Step 4: 1/1</score>", 4)
    assert four.ratings == (1.0, 0.0, 1.0, 1.0) and four.reason is None
    assert S.rec_rea(four.ratings) == (1.0, pytest.approx(2 / 3))  # last step; mean of the first three
    assert S.cot(*S.rec_rea(four.ratings)) == pytest.approx(0.5 + 1 / 3)
    one = S.parse_score("<score>Step 1: 1/1</score>", 1)
    assert S.rec_rea(one.ratings) == (1.0, 0.0), "a bare label has no reasoning: Rea = 0"
    wrong = S.parse_score("<score>Step 1: 1/1, Step 2: 1/1, Step 3: 0/1</score>", 3)
    assert S.rec_rea(wrong.ratings) == (0.0, 1.0)
    multi = S.parse_score("<score>Step 1: 1/1, Step 2: 0/1, Step 3: 2/3</score>", 3, k=3)
    assert multi.ratings == (1.0, 0.0, pytest.approx(2 / 3)) and multi.correct_labels == 2
    assert S.rec_rea(multi.ratings) == (pytest.approx(2 / 3), 0.5)


def test_strict_parser_counts_every_deviation():
    assert S.parse_score("Step 1: 1/1", 1).reason == "score_missing"
    assert S.parse_score("<score>all good</score>", 1).reason == "score_malformed"
    assert S.parse_score("<score>Step 1: 1, Step 2: 1/1</score>", 2).reason == "score_malformed"
    assert S.parse_score("<score>Step 1: 2/1</score>", 1).reason == "score_malformed"
    assert S.parse_score("<score>Step 1: 1/2, Step 2: 1/1</score>", 2).reason == "score_malformed"
    assert S.parse_score("<score>Step 2: 1/1, Step 1: 1/1</score>", 2).reason == "score_malformed"
    assert S.parse_score("<score>Step 1: 1/1, Step 2: 1/1</score>", 3).reason == "count_mismatch"
    assert S.parse_score("<score>Step 1: 3/3</score>", 1, k=2).reason == "score_malformed", "denominator must be K"
    assert S.parse_score("<score>Step 1: 3/2</score>", 1, k=2).reason == "score_malformed"
    spread = "<score>\nStep 1: 1/1,\nStep 2: 0/1\n</score>"
    assert S.parse_score(spread, 2).ratings == (1.0, 0.0), "a block over several lines is still a block"
    echoed = "Format: <score>Step 1: 0/1</score>. My rating: <score>Step 1: 1/1</score>"
    assert S.parse_score(echoed, 1).ratings == (1.0,), "the last block is the answer"


def test_upstream_parser_reproduces_the_published_drop_rule():
    assert S.parse_score_upstream("<score>Step 1: 1/1, Step 2: 0/1</score>", False) == [1.0, 0.0]
    assert S.parse_score_upstream("<score>\nStep 1: 1/1\n</score>", False) is None, "no DOTALL upstream"
    assert S.parse_score_upstream("<score>Step 1: 1, Step 2: 1</score>", False) == [], "dropped (empty)"
    assert S.parse_score_upstream("<score>Step 1: 5/1</score>", False) == [5.0], "any digit over 1 is taken"
    assert S.parse_score_upstream("<score>Step 1: 1/2</score>", False) == []
    assert S.parse_score_upstream("<score>Step 1: 1/1, Step 2: 3/0</score>", True) == [1.0, 0.0]
    assert S.parse_score_upstream("<score>Step 1:2/4</score> <score>Step 1: 1/1</score>", True) == [0.5]


def test_c_over_k_and_the_precision_aware_companion():
    fg = S.RULES["FG-ER"]
    assert fg.gold("Peace;Anticipation;Fear") == ["Peace", "Anticipation", "Fear"]
    assert S.RULES["ML-ER"].gold("anger,disgust") == ["anger", "disgust"]
    assert S.RULES["SA"].gold("neutral") == ["neutral"]
    labels = ["disappointment", "fear", "contempt", "disgust", "sadness", "anger", "anxiety", "happiness"]
    final = ("The predicted emotions are disappointment, fear, contempt, disgust, sadness, anger, anxiety, and "
             "happiness.")
    assert S.predicted_labels(final, labels) == labels
    precision, f1 = S.multilabel_precision(3, 3, 8)  # C/K = 3/3 (not penalised) but 3 of 8 predictions are right
    assert precision == pytest.approx(3 / 8) and f1 == pytest.approx(2 * (3 / 8) / (3 / 8 + 1))
    assert S.multilabel_precision(1, 2, 1) == (1.0, pytest.approx(2 / 3))
    assert S.multilabel_precision(2, 2, 1) == (1.0, 1.0), "a synonym the judge matched counts as predicted"
    assert S.multilabel_precision(0, 2, 0) == (0.0, 0.0)
    fine = ["very strong positive", "strong positive", "positive", "neutral"]
    assert S.predicted_labels("The predicted sentiment is strong positive.", fine) == ["strong positive"]
    assert S.predicted_labels("Doubt and confusion; also Fear", ["Doubt/Confusion", "Fear", "Fatigue"]) == [
        "Doubt/Confusion", "Fear"]


def _leaderboard():
    data = json.loads(shared_fixture("mme_emotion", "expected", "leaderboard_from_figures.json").read_text())
    data.pop("_source")
    return data


INCONSISTENT_COT = {("GPT-4.1", "ER-Wild"), ("Video-LLaMA", "FG-ER")}  # upstream figure errors (PROVENANCE.md)


def test_published_overall_rows_recomputed_from_the_task_rows():
    """Overall = task-size weighted mean of the task rows (the pooled micro-average), CoT = (Rec + Rea) / 2;
    Video-LLaMA's FG-ER Rea-S cell is inconsistent upstream (PROVENANCE.md), so its Rea / CoT overall is not."""
    board = _leaderboard()
    assert len(board) == 20
    for model, row in board.items():
        assert tuple(row["task_order"]) == S.TASK_ORDER
        assert row["task_N"] == [S.RULES[t].size for t in S.TASK_ORDER] and sum(row["task_N"]) == 6500
        per_task = {t: {"Rec-S": row["Rec-S"][i], "Rea-S": row["Rea-S"][i]} for i, t in enumerate(S.TASK_ORDER)}
        got = S.overall_from_tasks(per_task)
        assert got["n"] == 6500
        assert got["Rec-S"] == pytest.approx(row["check"]["weighted_Rec"], abs=5e-4)
        assert got["Rea-S"] == pytest.approx(row["check"]["weighted_Rea"], abs=5e-4)
        assert got["Rec-S"] == pytest.approx(row["overall"]["Rec-S"], abs=0.1), model
        if model != "Video-LLaMA":
            assert got["Rea-S"] == pytest.approx(row["overall"]["Rea-S"], abs=0.1), model
            assert got["CoT-S"] == pytest.approx(row["overall"]["CoT-S"], abs=0.1), model
    assert S.overall_from_tasks({"SA": {"Rec-S": 50.0, "Rea-S": 0.0}, "IR": {"Rec-S": 0.0, "Rea-S": 0.0}})["Rec-S"] \
        == pytest.approx(50 * 1600 / 2100)
    unweighted = sum(board["Gemini-2.5-Pro"]["Rec-S"]) / 8
    assert round(unweighted, 1) == 37.4 != board["Gemini-2.5-Pro"]["overall"]["Rec-S"], "a plain task mean is wrong"


def test_published_task_cot_is_the_alpha_mix_except_the_two_upstream_errors():
    checked = 0
    for model, row in _leaderboard().items():
        for i, task in enumerate(S.TASK_ORDER):
            if (model, task) in INCONSISTENT_COT:
                assert abs(S.cot(row["Rec-S"][i], row["Rea-S"][i]) - row["CoT-S"][i]) > 1, (model, task)
                continue
            assert S.cot(row["Rec-S"][i], row["Rea-S"][i]) == pytest.approx(row["CoT-S"][i], abs=0.051), (model, task)
            checked += 1
    assert checked == 158


def test_results_name_their_judges_and_flag_non_published_ones():
    published = {"step": "gpt-4.1-2025-04-14", "score": "openai/GPT-4o-2024-11-20"}
    ok = S.judge_comparability(published, "upstream", failures=3)
    assert ok["comparable"] and ok["judges_match_published"] and ok["judges"] == published
    strict = S.judge_comparability(published, "strict", failures=3)
    assert strict["judges_match_published"] and not strict["comparable"]
    assert "scores 3 failed sample(s) 0" in " ".join(strict["notes"])
    assert S.judge_comparability(published, "strict", failures=0)["comparable"]
    qwen = S.judge_comparability({"step": "gpt-4.1-2025-04-14", "score": "Qwen/Qwen2.5-VL-72B-Instruct"}, "upstream", 0)
    assert not qwen["comparable"] and "'Qwen/Qwen2.5-VL-72B-Instruct' is not the published" in qwen["notes"][0]
    assert not S.judge_comparability({"step": "gpt-4.1", "score": "gpt-4o"}, "upstream", 0)["comparable"], \
        "unpinned aliases are not the published snapshots"


class Costly(ScriptedBackend):
    def generate(self, requests):
        self.asked.extend(requests)
        return [Response(text="<score>Step 1: 1/1</score>", prompt_tokens=70, completion_tokens=30) for _ in requests]


def _request(i):
    return Request((Message("user", (TextPart(f"q{i}"),)),), sample_id=str(i))


def test_judge_budget_refuses_calls_past_it_and_books_tokens_per_role_and_task():
    ledger = JudgeLedger(max_tokens=250)
    raw = Costly()
    judge = metered(raw, "score", ledger)
    with judge_scope("mme-emotion-sa"):
        first = judge.generate([_request(i) for i in range(2)])
        second = judge.generate([_request(i) for i in range(2, 12)])
    assert all(r.ok for r in first)
    assert [r.ok for r in second] == [True] * 8 + [False] * 2, "chunks of 8 go out until the budget is spent"
    assert BUDGET_EXHAUSTED in second[-1].error and len(raw.asked) == 10
    usage = ledger.report(task="mme-emotion-sa")["roles"]["score"]
    assert usage == {"calls": 12, "cached": 0, "fresh": 10, "prompt_tokens": 700, "completion_tokens": 300,
                     "errors": 0, "refused": 2}
    assert ledger.spent == 1000 and ledger.exhausted
    assert ledger.report()["tasks"]["mme-emotion-sa"]["score"]["refused"] == 2
    unlimited = JudgeLedger()
    metered(Costly(), "step", unlimited).generate([_request(0)])
    assert not unlimited.exhausted and unlimited.report()["tasks"]["<none>"]["step"]["prompt_tokens"] == 70
