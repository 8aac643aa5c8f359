"""What a report shows, computed before anything is drawn: a compare, a scaling sweep, the cost
Pareto front and (optionally) a claim.

The model is a catalog `ModelConfig` or an imported one (`twofold.from_onnx` / `from_torch`); an
imported model without a token input is counted in samples (`unit`), as `twofold compare` does.

The scaling sweep plans every chip at N/4, N/2, N, 2N and 4N chips (the plans are cached, so the
compare's own count is not planned twice). The Pareto front is taken over every (chip, count)
point whose price is known, on ($ per million tokens, system tokens/s): a point is on it when no
other point is both cheaper per token and faster. Points without a price are not placed on the
cost axis; the report names them instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from twofold.compare.claim import ClaimResult
from twofold.compare.compare import DEFAULT_CHIPS, CompareResult, compare_targets
from twofold.compare.inputs import throughput_unit
from twofold.compare.plans import PlanCache, Target, plan_chip
from twofold.economics.prices import usd_per_million_tokens
from twofold.parallel.layout import TrainingWorkload
from twofold.search.pareto import pareto_front
from twofold.workload.imported import ImportedModel
from twofold.workload.model import ModelConfig

__all__ = [
    "ReportData",
    "ScalingPoint",
    "compare_report",
    "pareto_indices",
    "scaling_counts",
    "scaling_points",
]


@dataclass(frozen=True, kw_only=True, slots=True)
class ScalingPoint:
    """One chip at one chip count: its best layout's throughput in `unit` (tokens, or samples for
    an imported model without tokens) per second, and, if priced, $ per million of them."""

    chip: str
    chips: int
    per_chip_per_s: float
    system_per_s: float
    usd_per_million: float | None
    unit: str = "tokens"


@dataclass(frozen=True, kw_only=True, slots=True)
class ReportData:
    """Everything a report renders; a section is left out when its part is None or empty."""

    title: str
    compare: CompareResult | None = None
    scaling: tuple[ScalingPoint, ...] = ()
    claim: ClaimResult | None = None


def scaling_counts(chips: int) -> list[int]:
    """N/4, N/2, N, 2N, 4N (whole, at least 1, no repeats)."""
    return sorted({max(1, chips * k // 4) for k in (1, 2, 4, 8, 16)})


def scaling_points(
    model: ModelConfig | ImportedModel,
    targets: Sequence[Target],
    counts: Sequence[int],
    workload: TrainingWorkload,
    cache: PlanCache | None = None,
) -> tuple[ScalingPoint, ...]:
    """Best plan of every target at every count; counts with no fitting layout are skipped."""
    unit = throughput_unit(model)
    points = []
    for tgt in targets:
        for n in counts:
            if tgt.system.max_chips is not None and n > tgt.system.max_chips:
                continue
            plan = plan_chip(model, tgt, n, workload, cache)
            if plan.step is None:
                continue
            thr = plan.per_chip_per_s()
            points.append(
                ScalingPoint(
                    chip=tgt.label,
                    chips=n,
                    per_chip_per_s=thr,
                    system_per_s=thr * n,
                    usd_per_million=usd_per_million_tokens(tgt.price, thr),
                    unit=unit,
                )
            )
    return tuple(points)


def pareto_indices(points: Sequence[ScalingPoint]) -> tuple[list[int], list[int]]:
    """(priced point indices, indices among those on the cost/throughput Pareto front)."""
    priced = [i for i, p in enumerate(points) if p.usd_per_million is not None]
    if not priced:
        return [], []
    cost = np.array([points[i].usd_per_million for i in priced], dtype=float)
    gain = np.array([points[i].system_per_s for i in priced], dtype=float)
    return priced, [int(j) for j in pareto_front(cost, gain)]


def compare_report(
    model: ModelConfig | ImportedModel,
    targets: Sequence[Target],
    *,
    chips: int = DEFAULT_CHIPS,
    workload: TrainingWorkload | None = None,
    claim: ClaimResult | None = None,
    cache: PlanCache | None = None,
    **compare_kwargs: Any,
) -> ReportData:
    """A compare at `chips`, the scaling sweep around it, and optionally a claim's section.
    `workload` defaults as in `compare_targets` (`DEFAULT_WORKLOAD`; for an imported model, its
    own sequence length and precision)."""
    cache = {} if cache is None else cache
    result = compare_targets(model, targets, chips=chips, workload=workload, cache=cache, **compare_kwargs)
    workload = result.workload
    points = scaling_points(model, targets, scaling_counts(chips), workload, cache)
    names = ", ".join(t.label for t in targets)
    return ReportData(title=f"twofold: {model.name} on {names}", compare=result, scaling=points, claim=claim)
