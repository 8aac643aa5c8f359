"""Estimates of a training step (and, later, an inference request) with a full time breakdown."""

from twofold.estimate.result import TrainingEstimate
from twofold.estimate.step import BREAKDOWN_TERMS, HIDDEN_TERMS, MEMORY_TERMS, StepArrays, StepTerms
from twofold.estimate.training import estimate_training, evaluate_layouts, model_flops_per_token

__all__ = [
    "BREAKDOWN_TERMS",
    "HIDDEN_TERMS",
    "MEMORY_TERMS",
    "StepArrays",
    "StepTerms",
    "TrainingEstimate",
    "estimate_training",
    "evaluate_layouts",
    "model_flops_per_token",
]
