"""Evaluation protocols, metrics, reports and plots."""

from .protocols import Trials, p1_pairs, p2_references
from .report import evaluate, metrics_for

__all__ = ["Trials", "evaluate", "metrics_for", "p1_pairs", "p2_references"]
