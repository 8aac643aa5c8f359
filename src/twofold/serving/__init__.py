"""Serving under load: requests through a continuous-batching scheduler, priced per step.

`simulate_serving` builds the step-cost tables of one replica from `estimate.inference` (the same
prefill and decode figures as `estimate_inference`), then runs the step-level event loop of
`serving.scheduler`. Layer: imports estimate and below; compare and cli import it.
"""

from __future__ import annotations

from twofold.serving.api import simulate_serving
from twofold.serving.config import ENGINES, ServingConfig
from twofold.serving.costs import StepCosts, step_costs
from twofold.serving.result import LoadResult, Percentiles
from twofold.serving.scheduler import simulate

__all__ = [
    "ENGINES",
    "LoadResult",
    "Percentiles",
    "ServingConfig",
    "StepCosts",
    "simulate",
    "simulate_serving",
    "step_costs",
]
