"""The shared scorers: answer parsing, metrics, cue extraction, embedding match, utilization, the Omni-Perception
Reward and routing, probes, the emotion wheels and the answer rewards (R_acc, R_fmt) — imported by tasks and by the
trainer, which imports mepbench's scorers from here only."""

from mepbench.scoring.answer import ParsedAnswer, match_label, parse_answer
from mepbench.scoring.claims import ClaimReport, claim_consistency
from mepbench.scoring.cues import (
    DEFAULT_LEXICON,
    CueExtractor,
    Cues,
    ExtractionResult,
    LexiconCueExtractor,
    LLMCueExtractor,
    canonical_key,
    parse_cue_json,
    reasoning_text,
    states_absence,
)
from mepbench.scoring.embedding import (
    DEFAULT_EMBEDDER,
    PAPER_EMBEDDER,
    Embedder,
    EmbeddingCache,
    SentenceEmbedder,
    cosine_matrix,
    default_embedder,
    make_embedder,
)
from mepbench.scoring.mer_metrics import parse_openset
from mepbench.scoring.metrics import METRICS, Estimate, mean_estimate
from mepbench.scoring.probes import (
    PROBED,
    Faithfulness,
    ProbeItem,
    ProbeSet,
    faithfulness,
    parse_yes_no,
)
from mepbench.scoring.recovery import (
    CONJUNCTIONS,
    DEFAULT_DELTA,
    Clause,
    OmniPerception,
    RoutedClause,
    completion_clauses,
    hit_scores,
    omni_perception,
    route,
    score_completion,
    split_clauses,
    think_span,
)
from mepbench.scoring.rewards import (
    RewardFn,
    answer_words,
    completion_text,
    format_reward,
    gold_words,
    make_accuracy_reward,
    set_f1,
)
from mepbench.scoring.utilization import (
    DEFAULT_TAU,
    CueMatch,
    GroundedRecall,
    RecallRecord,
    UtilizationReport,
    cue_recall,
    grounded_recall,
)
from mepbench.scoring.vocabulary import AUDIO_CUES, VISUAL_CUES
from mepbench.scoring.wheel import EmotionWheels, load_wheels

__all__ = [
    "CONJUNCTIONS", "DEFAULT_DELTA", "DEFAULT_EMBEDDER", "DEFAULT_LEXICON", "DEFAULT_TAU", "METRICS",
    "PAPER_EMBEDDER", "PROBED", "AUDIO_CUES", "VISUAL_CUES", "ClaimReport", "Clause", "CueExtractor", "CueMatch",
    "Cues", "Embedder", "EmbeddingCache", "EmotionWheels", "Estimate", "ExtractionResult", "Faithfulness",
    "GroundedRecall", "LLMCueExtractor", "LexiconCueExtractor", "OmniPerception", "ParsedAnswer", "ProbeItem",
    "ProbeSet", "RecallRecord", "RewardFn", "RoutedClause", "SentenceEmbedder", "UtilizationReport", "answer_words",
    "canonical_key", "claim_consistency", "completion_clauses", "completion_text", "cosine_matrix", "cue_recall",
    "default_embedder", "faithfulness", "format_reward", "gold_words", "grounded_recall", "hit_scores",
    "load_wheels", "make_accuracy_reward", "make_embedder", "match_label", "mean_estimate", "omni_perception",
    "parse_answer", "parse_cue_json", "parse_openset", "parse_yes_no", "reasoning_text", "route",
    "score_completion", "set_f1", "split_clauses", "states_absence", "think_span",
]
