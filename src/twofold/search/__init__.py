"""Layout search: enumerate every valid parallel layout, evaluate them vectorised, rank, Pareto."""

from twofold.search.enumerate import EnumerateOptions, RejectionSummary, enumerate_layouts
from twofold.search.pareto import pareto_front
from twofold.search.plan import OBJECTIVES, PlanResult, RankedLayout, plan_training

__all__ = [
    "OBJECTIVES",
    "EnumerateOptions",
    "PlanResult",
    "RankedLayout",
    "RejectionSummary",
    "enumerate_layouts",
    "pareto_front",
    "plan_training",
]
