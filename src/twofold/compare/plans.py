"""The chips to compare (`Target`) and each chip's best plan (`ChipPlan`).

A `Target` is a chip, the system it runs in, and its price and power parameters. It is built from
a catalog id (`target`) or from `Chip` and `System` objects (`target_from`), the entry point for
what-if chips made with `dataclasses.replace`.

`plan_chip` runs `search.plan_training` once and, through the estimator seam, also records the
best layout among *all* valid layouts regardless of memory fit: the layout the chip would run if
its memory were unlimited. The ratio of the two throughputs is the `memory_capacity` factor of the
decomposition (`compare.factors`); it costs no second search.

An imported model (`workload.imported.ImportedModel`: a PyTorch trace or an ONNX graph) goes
through the same search: its axes come from the model (`workload.protocol`: dp = chips with each
ZeRO stage), so its unconstrained layout is the fastest ZeRO stage whether it fits or not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from twofold.economics.power import PowerModel, power_model_for
from twofold.economics.prices import Price, price_for
from twofold.errors import InputError
from twofold.estimate.step import StepArrays, StepTerms
from twofold.hardware.types import Chip, System
from twofold.parallel.layout import Layout, LayoutTable, TrainingWorkload
from twofold.workload.imported import ImportedModel
from twofold.workload.model import ModelConfig

if TYPE_CHECKING:
    from twofold.search.plan import PlanResult, RankedLayout

__all__ = [
    "ChipPlan",
    "PlanCache",
    "Target",
    "plan_chip",
    "search_chip",
    "split_chip_system",
    "target",
    "target_from",
]


@dataclass(frozen=True, kw_only=True, slots=True)
class Target:
    """A chip to compare: the chip, its system, its price per chip-hour and its power model."""

    chip: Chip
    system: System
    price: Price
    power: PowerModel
    # The software stack that runs on this chip (`cost.stack`: id, file or Stack; None = `auto`).
    stack: Any = None
    # Bounds on the layout search (`search.enumerate.EnumerateOptions`, e.g. max_vp, max_cp); None:
    # the whole space.
    options: Any = None
    # `chip@system` when the user named a system other than the chip's standard one; "" = chip id.
    name: str = ""

    @property
    def label(self) -> str:
        return self.name or self.chip.id


def target_from(
    chip: Chip,
    system: System,
    *,
    price_usd_per_chip_hour: float | None = None,
    tdp_w: float | None = None,
    idle_fraction: float | None = None,
    price_kind: str = "on-demand",
    stack: Any = None,
    min_quality: str | None = None,
) -> Target:
    """A target from objects (what-if chips): price and power from the arguments, else the
    system's catalog price of `price_kind` (of grade `min_quality` or better) and the chip's TDP."""
    prices = {chip.id: price_usd_per_chip_hour} if price_usd_per_chip_hour is not None else None
    powers = {chip.id: tdp_w} if tdp_w is not None else None
    return Target(
        chip=chip,
        system=system,
        price=price_for(system, chip, prices, kind=price_kind, min_quality=min_quality),
        power=power_model_for(chip, overrides_w=powers, idle_fraction=idle_fraction),
        stack=stack,
    )


def split_chip_system(name: str) -> tuple[str, str | None]:
    """`chip@system` -> (chip, system); a chip alone -> (chip, None), its standard system."""
    chip, sep, system = str(name).partition("@")
    if sep and (not chip.strip() or not system.strip()):
        raise InputError("on", name, "must be CHIP or CHIP@SYSTEM, e.g. trn2@trn2-ultraserver")
    return chip.strip(), (system.strip() if sep else None)


def target(
    name: str,
    *,
    prices: Mapping[str, float] | None = None,
    powers: Mapping[str, float] | None = None,
    idle_fraction: float | None = None,
    price_kind: str = "on-demand",
    stack: Any = None,
    min_quality: str | None = None,
) -> Target:
    """A target from a catalog chip id or alias, in its standard system, or `chip@system` in a
    catalog system (id or alias) that holds that chip (`InputError` naming both otherwise); `prices`
    and `powers` (USD per chip-hour, W) are keyed by chip id (`economics.parse_chip_values`); the
    catalog price is the published one of `price_kind` (`economics.PRICE_KINDS`) of grade
    `min_quality` or better, unknown where there is none."""
    from twofold.hardware.catalog import get_chip, system_for

    chip_name, system_name = split_chip_system(name)
    chip = get_chip(chip_name)
    system = system_for(chip, system_name)
    named = system_name is not None and system.id != chip.default_system
    return Target(
        chip=chip,
        system=system,
        price=price_for(system, chip, prices, kind=price_kind, min_quality=min_quality),
        power=power_model_for(chip, overrides_w=powers, idle_fraction=idle_fraction),
        stack=stack,
        name=f"{chip.id}@{system.id}" if named else "",
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class ChipPlan:
    """The best fitting layout of a target at a chip count, and the best layout ignoring memory.

    `step` / `unconstrained_step` are the estimator's terms of those layouts (`estimate.StepTerms`);
    `layout` and `step` are None when nothing fits (`explanation` says why).
    """

    target: Target
    chips: int
    workload: TrainingWorkload
    layout: Layout | None
    step: StepTerms | None
    unconstrained_layout: Layout | None
    unconstrained_step: StepTerms | None
    explanation: tuple[str, ...]

    def per_chip_per_s(self) -> float:
        """The best layout's throughput per chip: tokens per second, or samples per second for an
        imported model without tokens, whose workload has seq_len = 1 so that its tokens per
        second are its samples per second, the same number (`estimate.imported.imported_workload`)."""
        assert self.step is not None  # programmer invariant: asked only of a plan that fits
        return self.step.tokens_per_s_per_chip


class _Recorder:
    """Estimator seam wrapper: keeps the best layout over every evaluated row, fitting or not."""

    def __init__(self, stack: Any = None) -> None:
        self.best: tuple[float, float, Layout, StepTerms] | None = None
        self.stack = stack

    def __call__(
        self,
        model: ModelConfig | ImportedModel,
        system: System,
        workload: TrainingWorkload,
        table: LayoutTable,
        *,
        chip: Chip,
    ) -> StepArrays:
        from twofold.cost.calibration import shipped_calibration
        from twofold.estimate import evaluate_layouts

        calibration = shipped_calibration().with_stack(self.stack)
        out = evaluate_layouts(model, system, workload, table, chip=chip, calibration=calibration)
        if len(table):
            score = np.asarray(out.tokens_per_s_per_chip, dtype=float)
            mem = np.asarray(out.memory_per_chip_gib, dtype=float)
            i = int(np.lexsort((mem, -score))[0])  # same tie-break as plan_training: less memory
            if self.best is None or (score[i], -mem[i]) > (self.best[0], -self.best[1]):
                self.best = (float(score[i]), float(mem[i]), table.row(i), out.row(i))
        return out


PlanCache = dict[tuple[str, str, str, int, TrainingWorkload, str, Any], ChipPlan]


def stack_key(stack: Any) -> str:
    """How a target's stack is named in plan caches and sweep scenarios: "auto", a stack id or a
    stack file's path (a Stack object: its file, else its id)."""
    if stack is None:
        return "auto"
    if isinstance(stack, str):
        return stack
    return str(getattr(stack, "path", "") or getattr(stack, "id", stack))


def search_chip(
    model: ModelConfig | ImportedModel,
    system: System,
    chip: Chip,
    chips: int,
    workload: TrainingWorkload,
    stack: Any = None,
    options: Any = None,
) -> tuple[PlanResult[RankedLayout], tuple[Layout, StepTerms] | None]:
    """`plan_training` (throughput, top 1) and the best layout ignoring memory with its metrics:
    the one search behind `plan_chip`, also run by `twofold claim`'s sweep workers. `stack`: the
    software stack (`cost.stack`; None = `auto`)."""
    from twofold.search.plan import plan_training

    recorder = _Recorder(stack)
    result = plan_training(
        model, system, chips, workload, top_k=1, chip=chip, evaluate=recorder, options=options, stack=stack
    )
    return result, None if recorder.best is None else (recorder.best[2], recorder.best[3])


def plan_chip(
    model: ModelConfig | ImportedModel,
    tgt: Target,
    chips: int,
    workload: TrainingWorkload,
    cache: PlanCache | None = None,
) -> ChipPlan:
    """Best plan of `model` on `chips` chips of `tgt` (plan_training, throughput objective; the
    model's own axes, `workload.protocol`)."""
    key = (model.name, tgt.chip.id, tgt.system.id, chips, workload, stack_key(tgt.stack), tgt.options)
    if cache is not None and key in cache and cache[key].target.chip is tgt.chip:
        return cache[key]
    result, unconstrained = search_chip(model, tgt.system, tgt.chip, chips, workload, tgt.stack, tgt.options)
    best = result.best
    plan = ChipPlan(
        target=tgt,
        chips=chips,
        workload=workload,
        layout=None if best is None else best.layout,
        step=None if best is None else best.step,
        unconstrained_layout=None if unconstrained is None else unconstrained[0],
        unconstrained_step=None if unconstrained is None else unconstrained[1],
        explanation=tuple(result.explanation),
    )
    if cache is not None:
        cache[key] = plan
    return plan
