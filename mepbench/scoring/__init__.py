"""The shared scorers: answer parsing and metrics, imported by tasks and by the trainer's rewards."""

from mepbench.scoring.answer import ParsedAnswer, match_label, parse_answer
from mepbench.scoring.metrics import METRICS, Estimate

__all__ = ["METRICS", "Estimate", "ParsedAnswer", "match_label", "parse_answer"]
