"""Deprecated: `search.plan.plan_training` plans imported models (their axes come from the model)."""

from __future__ import annotations

import warnings
from functools import partial
from typing import Any

from twofold.cost.profile import CalibrationProfile
from twofold.estimate.imported import imported_workload
from twofold.estimate.training import evaluate_layouts
from twofold.hardware.types import Chip, System
from twofold.parallel.layout import TrainingWorkload
from twofold.search.plan import PlanResult, RankedLayout, plan_training
from twofold.workload.imported import ImportedModel

__all__ = ["ZERO_STAGES", "plan_imported"]

ZERO_STAGES = (0, 1, 2, 3)


def plan_imported(
    imported: ImportedModel,
    system_or_chip: System | Chip | str,
    chips: int,
    workload_or_global_batch: TrainingWorkload | int,
    *,
    profile: CalibrationProfile | None = None,
    fuse: bool = True,
    **kwargs: Any,
) -> PlanResult[RankedLayout]:
    """Deprecated: `plan_training(imported, ...)` (`fuse=False` is `imported.eager()`, a global
    batch is `estimate.imported.imported_workload`)."""
    warnings.warn(
        "plan_imported is deprecated: plan_training takes imported models", DeprecationWarning, stacklevel=2
    )
    workload = workload_or_global_batch
    if not isinstance(workload, TrainingWorkload):
        workload = imported_workload(imported, workload)
    evaluate = None if profile is None else partial(evaluate_layouts, profile=profile)
    model = imported if fuse else imported.eager()
    return plan_training(model, system_or_chip, chips, workload, evaluate=evaluate, **kwargs)
