"""Chips side by side (`compare`) and vendor claims checked across workloads (`claim`)."""

from twofold.compare.compare import (
    DEFAULT_CHIPS,
    DEFAULT_WORKLOAD,
    MODES,
    RATIO_METRICS,
    CompareResult,
    CompareRow,
    compare,
    compare_targets,
    default_tokens,
)
from twofold.compare.factors import THROUGHPUT_FACTORS, ChipTerms, chip_terms, dominant_factor, ratio_factors
from twofold.compare.plans import ChipPlan, Target, plan_chip, target, target_from

__all__ = [
    "DEFAULT_CHIPS",
    "DEFAULT_WORKLOAD",
    "MODES",
    "RATIO_METRICS",
    "THROUGHPUT_FACTORS",
    "ChipPlan",
    "ChipTerms",
    "CompareResult",
    "CompareRow",
    "Target",
    "chip_terms",
    "compare",
    "compare_targets",
    "default_tokens",
    "dominant_factor",
    "plan_chip",
    "ratio_factors",
    "target",
    "target_from",
]
