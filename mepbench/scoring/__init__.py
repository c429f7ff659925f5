"""The shared scorers: answer parsing, metrics, cue extraction, embedding match, utilization, the Omni-Perception
Reward and routing, probes and TRL reward adapters — imported by tasks and by the trainer's rewards."""

from mepbench.scoring.answer import ParsedAnswer, match_label, parse_answer
from mepbench.scoring.claims import ClaimReport, claim_consistency
from mepbench.scoring.cues import (
    DEFAULT_LEXICON,
    CueExtractor,
    Cues,
    ExtractionResult,
    LexiconCueExtractor,
    LLMCueExtractor,
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
)
from mepbench.scoring.metrics import METRICS, Estimate, mean_estimate
from mepbench.scoring.probes import Faithfulness, ProbeItem, ProbeSet, faithfulness, parse_yes_no
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
    accuracy_reward,
    completion_text,
    cue_recovery_reward,
    format_reward,
    make_cue_recovery_reward,
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

__all__ = [
    "CONJUNCTIONS", "DEFAULT_DELTA", "DEFAULT_EMBEDDER", "DEFAULT_LEXICON", "DEFAULT_TAU", "METRICS", "PAPER_EMBEDDER",
    "ClaimReport", "Clause", "CueExtractor", "CueMatch", "Cues", "Embedder", "EmbeddingCache", "Estimate",
    "ExtractionResult", "Faithfulness", "GroundedRecall", "LLMCueExtractor", "LexiconCueExtractor", "OmniPerception",
    "ParsedAnswer", "ProbeItem", "ProbeSet", "RecallRecord", "RoutedClause", "SentenceEmbedder", "UtilizationReport",
    "accuracy_reward", "claim_consistency", "completion_clauses", "completion_text", "cosine_matrix", "cue_recall",
    "cue_recovery_reward", "default_embedder", "faithfulness", "format_reward", "grounded_recall", "hit_scores",
    "make_cue_recovery_reward", "match_label", "mean_estimate", "omni_perception", "parse_answer", "parse_cue_json",
    "parse_yes_no", "reasoning_text", "route", "score_completion", "split_clauses", "states_absence", "think_span",
]
