"""Estimates of a training step (and, later, an inference request) with a full time breakdown."""

from twofold.estimate.result import BREAKDOWN_TERMS, HIDDEN_TERMS, MEMORY_TERMS, TrainingEstimate
from twofold.estimate.training import estimate_training, evaluate_layouts, model_flops_per_token

__all__ = [
    "BREAKDOWN_TERMS",
    "HIDDEN_TERMS",
    "MEMORY_TERMS",
    "TrainingEstimate",
    "estimate_training",
    "evaluate_layouts",
    "model_flops_per_token",
]
