"""`plan_imported`: the best data-parallel / ZeRO layout for an imported model.

An imported model admits only data parallelism (`estimate.imported`), so on `chips` chips the
layout is dp = chips, and the search is over the ZeRO stage (0, 1, 2, 3 = FSDP). The micro-batch
is the batch the model was imported with (re-import with another batch to compare micro-batch
sizes: the traced operators are those of one micro-batch). Ranking as `search.plan`: highest
throughput (samples per second per chip) among the layouts that fit, ties to less memory.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from twofold.cost.profile import CalibrationProfile
from twofold.errors import InputError
from twofold.estimate.imported import ImportedTrainingEstimate, estimate_imported_training
from twofold.hardware.types import Chip, System
from twofold.parallel.layout import Layout, TrainingWorkload
from twofold.parallel.memory import DEFAULT_MEM_HEADROOM
from twofold.search.enumerate import RejectionSummary
from twofold.search.pareto import pareto_front
from twofold.search.plan import PlanResult, _resolve_hardware
from twofold.workload.imported import ImportedModel

__all__ = ["ZERO_STAGES", "ImportedRankedLayout", "plan_imported"]

ZERO_STAGES = (0, 1, 2, 3)


@dataclass(frozen=True, kw_only=True)
class ImportedRankedLayout:
    """One ZeRO stage of an imported model: its layout and its estimate."""

    estimate: ImportedTrainingEstimate

    @property
    def layout(self) -> Layout:
        return self.estimate.layout

    def to_dict(self) -> dict[str, Any]:
        e = self.estimate
        return {
            "layout": asdict(e.layout),
            "step_time_s": e.step_time_s,
            "samples_per_s_per_chip": e.samples_per_s_per_chip,
            "tokens_per_s_per_chip": e.tokens_per_s_per_chip,
            "mfu": e.mfu,
            "memory_per_chip_gib": e.memory_per_chip_gib,
            "fits": e.fits,
            **{f"breakdown_{k}_s": v for k, v in e.breakdown.items()},
        }


def plan_imported(
    imported: ImportedModel,
    system_or_chip: System | Chip | str,
    chips: int,
    workload_or_global_batch: TrainingWorkload | int,
    *,
    chip: Chip | None = None,
    top_k: int = 10,
    profile: CalibrationProfile | None = None,
    fuse: bool = True,
    mem_headroom: float = DEFAULT_MEM_HEADROOM,
) -> PlanResult[ImportedRankedLayout]:
    """Evaluate dp = `chips` with every ZeRO stage and rank them (module docstring); a layout fits
    within capacity * (1 - `mem_headroom`) (`parallel.memory`)."""
    t0 = time.perf_counter()
    if isinstance(chips, bool) or not isinstance(chips, (int, np.integer)) or chips < 1:
        raise InputError("chips", chips, "must be a positive integer")
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise InputError("top_k", top_k, "must be a positive integer")
    system, chip = _resolve_hardware(system_or_chip, chip)
    layouts = [Layout(dp=int(chips), zero=z, micro_batch=imported.batch) for z in ZERO_STAGES]
    t1 = time.perf_counter()
    estimates = [
        estimate_imported_training(
            imported,
            system,
            lay,
            workload_or_global_batch,
            chip=chip,
            profile=profile,
            fuse=fuse,
            mem_headroom=mem_headroom,
        )
        for lay in layouts
    ]
    t2 = time.perf_counter()
    rows = [ImportedRankedLayout(estimate=e) for e in estimates]
    fit = [i for i, e in enumerate(estimates) if e.fits]
    order = sorted(
        fit, key=lambda i: (-estimates[i].samples_per_s_per_chip, estimates[i].memory_per_chip_gib, i)
    )
    top = tuple(rows[i] for i in order[:top_k])
    mem = np.array([estimates[i].memory_per_chip_gib for i in fit])
    speed = np.array([estimates[i].samples_per_s_per_chip for i in fit])
    pareto = tuple(rows[fit[j]] for j in pareto_front(mem, speed)) if fit else ()
    explanation: tuple[str, ...] = ()
    if not fit:
        least = min(estimates, key=lambda e: e.memory_per_chip_gib)
        explanation = (
            f"no layout fits: the smallest memory per chip is {least.memory_per_chip_gib:.1f} GiB "
            f"(ZeRO-{least.layout.zero}) against {chip.hbm_capacity_gib * (1.0 - mem_headroom):.1f} GiB "
            f"usable on {chip.id} ({chip.hbm_capacity_gib:g} GiB, {mem_headroom:.0%} headroom)",
        )
    rejections = RejectionSummary(
        chips=int(chips),
        factorisations=1,
        rejected_factorisations={},
        violations={},
        rule_text={},
        allowed={"dp": (int(chips),), "tp": (1,), "pp": (1,), "cp": (1,)},
        candidates=len(layouts),
        rejected_layouts={},
        valid=len(layouts),
    )
    return PlanResult(
        model=imported.name,
        system=system.id,
        chip=chip.id,
        chips=int(chips),
        workload=estimates[0].workload,
        objective="throughput",
        best=top[0] if top else None,
        top=top,
        pareto=pareto,
        candidate_layouts=len(layouts),
        evaluated_layouts=len(layouts),
        valid_layouts=len(layouts),
        fitting_layouts=len(fit),
        rejections=rejections,
        explanation=explanation,
        enumerate_s=t1 - t0,
        evaluate_s=t2 - t1,
        elapsed_s=time.perf_counter() - t0,
        hbm_capacity_gib=float(chip.hbm_capacity_gib),
        mem_headroom=float(mem_headroom),
    )
