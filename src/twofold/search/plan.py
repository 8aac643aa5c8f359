"""`plan_training`: search every valid layout, evaluate them in one vectorised call, rank, Pareto.

The search is exhaustive over the space of `search.enumerate` (no sampling, no heuristics): the
space of a 405B model on 16,384 chips is a few tens of thousands of layouts, which the vectorised
estimator evaluates in well under a second, so nothing is gained by pruning and a ranking that
never misses the best layout is worth more.

What a team will run, not just what scores best:

- **Memory headroom.** A layout fits when its memory per chip is at most capacity * (1 -
  `mem_headroom`) (`parallel.memory.DEFAULT_MEM_HEADROOM`, 5%: allocator fragmentation, NCCL
  buffers and what the memory model leaves out). The plan decides fit itself from the evaluator's
  `memory_per_chip_gib`, so every evaluator is held to the same rule.
- **Ties prefer simpler layouts.** Layouts whose objective is within `tie_tolerance` of the best
  (relative: the best is at most 1 + tolerance times better; default `DEFAULT_TIE_TOLERANCE` = 3%)
  are ties; among them the ranking prefers fewer parallel dimensions above 1 (dp, tp, pp, cp, ep),
  then smaller vp, then smaller cp, then smaller tp * pp, then less memory. Why 3%: the same
  published figure moves by 5-10% across software versions of one source (the accuracy floor of
  the design notes; docs/accuracy.md, "release-to-release spread"), so a 3% gap between two
  layouts is below what the model resolves, while every extra dimension is one more thing to
  configure, debug and keep balanced. Layouts outside the tolerance keep the objective's order
  (then memory, then enumeration order). One `np.lexsort`, no Python loop per layout.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import numpy as np

from twofold.checks import positive_int
from twofold.cost.calibration import shipped_calibration
from twofold.errors import InputError
from twofold.estimate.step import StepArrays, StepTerms
from twofold.hardware.scale import check_scale, scale_notes
from twofold.hardware.types import Chip, System
from twofold.parallel.layout import Layout, LayoutTable, TrainingWorkload
from twofold.parallel.memory import DEFAULT_MEM_HEADROOM, usable_memory_bytes
from twofold.parallel.rules import check_context_length
from twofold.search.enumerate import EnumerateOptions, RejectionSummary, enumerate_layouts
from twofold.search.objectives import (
    OBJECTIVES,
    ObjectiveArrays,
    ObjectiveInputs,
    ObjectiveTerms,
    check_objective,
    objective_inputs,
    objective_metrics,
    objective_scores,
)
from twofold.search.pareto import pareto_front
from twofold.workload.model import ModelConfig

if TYPE_CHECKING:  # loaded only with an imported model (start-up time)
    from twofold.workload.imported import ImportedModel

__all__ = [
    "DEFAULT_TIE_TOLERANCE",
    "OBJECTIVES",
    "PlanResult",
    "Ranked",
    "RankedLayout",
    "check_objective",
    "plan_training",
]

# Layouts per evaluator call: bounds the estimator's temporaries (a few dozen float64 arrays per
# layout) to some hundreds of MB even for spaces far larger than any catalog model produces.
CHUNK_LAYOUTS = 1 << 18

# `(model, system, workload, table, *, chip) -> StepArrays`: `estimate.evaluate_layouts` or a stand-in.
Evaluator = Callable[..., StepArrays]

# Relative gap below which two layouts' objectives are a tie (module docstring).
DEFAULT_TIE_TOLERANCE = 0.03
# The parallel dimensions whose count (those above 1) says how complex a layout is to run.
PARALLEL_DIMENSIONS = ("dp", "tp", "pp", "cp", "ep")


@dataclass(frozen=True, kw_only=True, slots=True)
class RankedLayout:
    """One evaluated layout: the layout, the estimator's terms of its step (`fits` by the search's
    headroom) and the objective's figures (cost, energy or time; None for throughput).
    `samples_per_s_per_chip`: an imported model's throughput in samples (None for a catalog one)."""

    layout: Layout
    step: StepTerms
    objective: ObjectiveTerms | None = None
    samples_per_s_per_chip: float | None = None

    def to_dict(self) -> dict[str, Any]:
        extra = {} if self.objective is None else self.objective.to_dict()
        samples = (
            {}
            if self.samples_per_s_per_chip is None
            else {"samples_per_s_per_chip": self.samples_per_s_per_chip}
        )
        return {"layout": asdict(self.layout), **self.step.to_dict(), **samples, **extra}


class Ranked(Protocol):
    """What a plan ranks: a layout and its JSON (`RankedLayout`)."""

    @property
    def layout(self) -> Layout: ...

    def to_dict(self) -> dict[str, Any]: ...


R = TypeVar("R", bound=Ranked)


@dataclass(frozen=True, kw_only=True, slots=True)
class PlanResult(Generic[R]):
    """The outcome of a layout search.

    `candidate_layouts` counts what the enumeration considered, `valid_layouts` what passed every
    rule (all of which are evaluated: `evaluated_layouts`), `fitting_layouts` those whose memory
    per chip fits. `best` is None when nothing fits; `explanation` then says why.
    `objective_inputs` holds the price, power model or token budget the objective used.
    Memory fits within capacity * (1 - `mem_headroom`); `ties` counts the fitting layouts within
    `tie_tolerance` of the best objective (the best included), among which the simplest is first.
    `notes`: what the plan assumes about the system at this chip count (an assumed scale-out
    network level, `hardware.scale.scale_notes`), as an estimate's notes say it.
    """

    model: str
    system: str
    chip: str
    chips: int
    workload: TrainingWorkload
    objective: str
    objective_inputs: ObjectiveInputs | None = None  # None: throughput, nothing needed
    best: R | None
    top: tuple[R, ...]
    pareto: tuple[R, ...]
    candidate_layouts: int
    evaluated_layouts: int
    valid_layouts: int
    fitting_layouts: int
    rejections: RejectionSummary
    explanation: tuple[str, ...]
    enumerate_s: float
    evaluate_s: float
    elapsed_s: float
    hbm_capacity_gib: float | None = None
    mem_headroom: float = DEFAULT_MEM_HEADROOM
    tie_tolerance: float = 0.0
    ties: int = 0
    notes: tuple[str, ...] = ()

    @property
    def usable_memory_gib(self) -> float | None:
        """Memory per chip a layout may use: capacity * (1 - mem_headroom)."""
        if self.hbm_capacity_gib is None:
            return None
        return self.hbm_capacity_gib * (1.0 - self.mem_headroom)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "system": self.system,
            "chip": self.chip,
            "chips": self.chips,
            "workload": self.workload.to_dict(),
            "objective": self.objective,
            "objective_metric": OBJECTIVES[self.objective][0],
            "objective_inputs": {} if self.objective_inputs is None else self.objective_inputs.to_dict(),
            "best": None if self.best is None else self.best.to_dict(),
            "top": [r.to_dict() for r in self.top],
            "pareto": [r.to_dict() for r in self.pareto],
            "candidate_layouts": self.candidate_layouts,
            "evaluated_layouts": self.evaluated_layouts,
            "valid_layouts": self.valid_layouts,
            "fitting_layouts": self.fitting_layouts,
            "hbm_capacity_gib": self.hbm_capacity_gib,
            "mem_headroom": self.mem_headroom,
            "usable_memory_gib": self.usable_memory_gib,
            "tie_tolerance": self.tie_tolerance,
            "ties": self.ties,
            "rejections": self.rejections.to_dict(),
            "explanation": list(self.explanation),
            "notes": list(self.notes),
            "enumerate_s": self.enumerate_s,
            "evaluate_s": self.evaluate_s,
            "elapsed_s": self.elapsed_s,
        }


def _resolve_hardware(system_or_chip: System | Chip | str, chip: Chip | None) -> tuple[System, Chip]:
    """The system and its chip, from either (a chip implies its standard system)."""
    if isinstance(system_or_chip, System) and chip is not None:
        return system_or_chip, chip
    from twofold.hardware import catalog

    if isinstance(system_or_chip, str):
        the_chip = catalog.get_chip(system_or_chip)
        return catalog.system_for(the_chip, None), the_chip
    if isinstance(system_or_chip, Chip):
        return catalog.system_for(system_or_chip, None), system_or_chip
    if isinstance(system_or_chip, System):
        return system_or_chip, catalog.chip_of(system_or_chip)
    raise InputError("system", system_or_chip, "must be a System, a Chip or a chip id")


def _default_evaluator(stack: Any = None) -> Evaluator:
    """`estimate.evaluate_layouts` with the shipped calibration running `stack` (None = `auto`)."""
    from twofold.estimate import evaluate_layouts

    if stack is None:
        return evaluate_layouts
    from functools import partial

    return partial(evaluate_layouts, calibration=shipped_calibration().with_stack(stack))


def _evaluate_all(
    evaluate: Evaluator,
    model: ModelConfig | ImportedModel,
    system: System,
    chip: Chip,
    workload: TrainingWorkload,
    table: LayoutTable,
) -> StepArrays:
    """One evaluator call per chunk of layouts, the chunks' arrays concatenated."""
    n = len(table)
    parts: list[StepArrays] = []
    for start in range(0, n, CHUNK_LAYOUTS):
        chunk = table.take(np.arange(start, min(start + CHUNK_LAYOUTS, n)))
        parts.append(evaluate(model, system, workload, chunk, chip=chip))
    for part in parts:
        if not isinstance(part, StepArrays):
            raise TypeError(f"the evaluator returned {type(part).__name__}, not estimate.StepArrays")
    return StepArrays.concat(parts)


def _ranked(
    table: LayoutTable,
    step: StepArrays,
    extra: ObjectiveArrays,
    index: np.ndarray,
    samples_per_token: float | None = None,
) -> tuple[RankedLayout, ...]:
    """The rows at `index`; `samples_per_token` (1 / seq_len) for a model counted in samples."""
    return tuple(
        RankedLayout(
            layout=table.row(i),
            step=step.row(i),
            objective=extra.row(i),
            samples_per_s_per_chip=None
            if samples_per_token is None
            else float(step.tokens_per_s_per_chip[i]) * samples_per_token,
        )
        for i in index.tolist()
    )


def _why_nothing_fits(step: StepArrays, chip: Chip, mem_headroom: float) -> list[str]:
    """The least memory any valid layout needs against the usable memory, and its largest term
    (of weights, gradients, optimizer states, activations, workspace), in GiB."""
    mem = step.memory_per_chip_gib
    i = int(np.argmin(mem))
    lines = [
        f"no valid layout fits: the smallest memory per chip is {float(mem[i]):.1f} GiB against "
        f"{chip.hbm_capacity_gib * (1.0 - mem_headroom):.1f} GiB usable on {chip.id} "
        f"({chip.hbm_capacity_gib:g} GiB, {mem_headroom:.0%} headroom)"
    ]
    terms = {part: float(v[i]) / 2**30 for part, v in step.memory_bytes.items()}
    name = max(terms, key=lambda k: terms[k])
    share = terms[name] / max(float(mem[i]), 1e-300)
    lines.append(f"in that layout the largest term is {name}: {terms[name]:.1f} GiB ({share:.0%})")
    return lines


def _stack_zero_stages(options: EnumerateOptions | None, running: Any, chip: Chip) -> EnumerateOptions:
    """`options` with its ZeRO stages narrowed to the ones the stack implements (`cost.stack`
    zero_stages): a search returns only layouts the stack can run. An empty intersection is an
    InputError naming both sets."""
    opts = options or EnumerateOptions()
    allowed = running.zero_stages_on(chip)
    stages = tuple(z for z in opts.zero_stages if z in allowed)
    if not stages:
        raise InputError(
            "zero_stages",
            opts.zero_stages,
            f"stack {running.stack_for(chip).id} runs ZeRO stages {', '.join(map(str, allowed))} only",
        )
    return dataclasses.replace(opts, zero_stages=stages)


def plan_training(
    model: ModelConfig | ImportedModel | str,
    system_or_chip: System | Chip | str,
    chips: int,
    workload: TrainingWorkload,
    *,
    objective: str = "throughput",
    top_k: int = 10,
    chip: Chip | None = None,
    options: EnumerateOptions | None = None,
    evaluate: Evaluator | None = None,
    prices: Mapping[str, float] | None = None,
    powers: Mapping[str, float] | None = None,
    price_kind: str = "on-demand",
    idle_fraction: float | None = None,
    tokens: float | None = None,
    mem_headroom: float = DEFAULT_MEM_HEADROOM,
    tie_tolerance: float = DEFAULT_TIE_TOLERANCE,
    stack: Any = None,
    allow_long_context: bool = False,
    min_quality: str | None = None,
) -> PlanResult[RankedLayout]:
    """Search every valid layout of `model` on `chips` chips of a system and rank them.

    `model`: a catalog id, a `ModelConfig` or an imported graph (`ImportedModel`); the axes searched
    are the model's (`workload.protocol`: an imported model gets dp = `chips` with each ZeRO stage
    at its recorded micro-batch, `search.enumerate`), ranked by the same rules, and its rows also
    carry `samples_per_s_per_chip`.

    `evaluate` is the estimator seam (default `twofold.estimate.evaluate_layouts`): it takes
    `(model, system, workload, table, *, chip)` and returns the `estimate.StepArrays` of the
    table's layouts. Layouts whose memory per chip exceeds
    capacity * (1 - `mem_headroom`) do not fit (the evaluator's `fits` is replaced by this rule):
    they are evaluated but never ranked. Layouts within `tie_tolerance` (relative) of the best
    objective rank simplest first (module docstring); the others by objective, then lower memory
    per chip, then enumeration order, so the result is deterministic. `chip` overrides the system's
    own chip (a what-if chip, or a system built outside the catalog); `options` narrows the space.
    `stack` (`cost.stack`: an id, a YAML file or a Stack; None = `auto`, the chip vendor's
    reference stack) is the software stack the default evaluator prices the layouts with; its
    context-parallel algorithm also decides the layout rules (all-to-all adds the head rules,
    `search.enumerate.ALL_TO_ALL_CP_RULES`), so a custom `evaluate` running another stack passes
    that stack here too. A `seq_len` past the model's `max_position_embeddings` is refused unless
    `allow_long_context`.

    `objective` (`search.objectives`): "throughput" (tokens/s per chip), "cost" ($ per million
    tokens; `prices` {chip id: USD per chip-hour} over the catalog price of `price_kind`, of grade
    `min_quality` or better),
    "energy" (J per token; `powers` {chip id: TDP W}, `idle_fraction`) or "time" (seconds to train
    `tokens`, default 20 x active parameters). Inputs of another objective are refused; an
    unknown price or TDP is an InputError naming the chip, raised before any layout is evaluated.
    """
    t0 = time.perf_counter()
    _, larger_is_better = check_objective(objective)
    positive_int("top_k", top_k)
    if (
        isinstance(tie_tolerance, bool)
        or not isinstance(tie_tolerance, (int, float, np.integer, np.floating))
        or not 0.0 <= float(tie_tolerance) < 1.0
    ):
        raise InputError("tie_tolerance", tie_tolerance, "must be a relative gap in [0, 1)")
    if isinstance(model, str):
        from twofold.workload import get_model

        model = get_model(model)
    check_context_length(model, workload.seq_len, allow_long_context=allow_long_context)
    system, chip = _resolve_hardware(system_or_chip, chip)
    check_scale(system, chips)
    usable_gib = usable_memory_bytes(chip.hbm_capacity_bytes, mem_headroom) / 2**30
    inputs = objective_inputs(
        objective,
        model,
        system,
        chip,
        prices=prices,
        powers=powers,
        price_kind=price_kind,
        idle_fraction=idle_fraction,
        tokens=tokens,
        min_quality=min_quality,
    )
    if evaluate is None:
        evaluate = _default_evaluator(stack)

    running = shipped_calibration().with_stack(stack)
    cp_algorithm = running.context_parallel_on(chip)
    options = _stack_zero_stages(options, running, chip)
    table, rejections = enumerate_layouts(
        model, workload, chips, system=system, options=options, context_parallel=cp_algorithm
    )
    t1 = time.perf_counter()
    step: StepArrays | None = None
    extra = ObjectiveArrays()
    if len(table):
        step = _evaluate_all(evaluate, model, system, chip, workload, table)
        extra = objective_metrics(inputs, step, rejections.chips)
    t2 = time.perf_counter()

    explanation: list[str] = []
    if step is None:
        explanation = rejections.explain()
        top: tuple[RankedLayout, ...] = ()
        pareto: tuple[RankedLayout, ...] = ()
        fitting = 0
        ties = 0
    else:
        step = step.with_fits(np.asarray(step.memory_per_chip_gib, dtype=float) <= usable_gib)
        fit_idx = np.flatnonzero(step.fits)
        if fit_idx.size == 0:
            explanation = _why_nothing_fits(step, chip, mem_headroom)
        score = objective_scores(objective, step, extra)[fit_idx]
        mem = step.memory_per_chip_gib[fit_idx]
        order, ties = _rank(table, fit_idx, score, mem, larger_is_better, float(tie_tolerance))
        per = 1.0 / workload.seq_len if not isinstance(model, ModelConfig) else None
        top = _ranked(table, step, extra, fit_idx[order[:top_k]], per)
        throughput = step.tokens_per_s_per_chip[fit_idx]
        pareto = _ranked(table, step, extra, fit_idx[pareto_front(mem, throughput)], per)
        fitting = int(fit_idx.size)

    return PlanResult(
        model=model.name,
        system=system.id,
        chip=chip.id,
        chips=rejections.chips,
        workload=workload,
        objective=objective,
        objective_inputs=inputs,
        best=top[0] if top else None,
        top=top,
        pareto=pareto,
        candidate_layouts=rejections.candidates,
        evaluated_layouts=len(table),
        valid_layouts=rejections.valid,
        fitting_layouts=fitting,
        rejections=rejections,
        explanation=tuple(explanation),
        enumerate_s=t1 - t0,
        evaluate_s=t2 - t1,
        elapsed_s=time.perf_counter() - t0,
        hbm_capacity_gib=float(chip.hbm_capacity_gib),
        mem_headroom=float(mem_headroom),
        tie_tolerance=float(tie_tolerance),
        ties=ties,
        notes=scale_notes(system, rejections.chips),
    )


def _rank(
    table: LayoutTable,
    fit_idx: np.ndarray,
    score: np.ndarray,
    mem: np.ndarray,
    larger_is_better: bool,
    tie_tolerance: float,
) -> tuple[np.ndarray, int]:
    """Order of the fitting layouts (positions into `fit_idx`) and how many tie with the best.

    A tie is a score the best beats by a factor of at most 1 + `tie_tolerance` (score * (1 + tol)
    >= best when larger is better, score <= best * (1 + tol) when smaller is): a ratio, so cost
    and time to train (both inverse to throughput) tie exactly the layouts throughput ties. Ties
    come first, simplest first (module docstring); the rest by score, then memory, then
    enumeration order.
    """
    if fit_idx.size == 0:
        return np.zeros(0, dtype=np.int64), 0
    if larger_is_better:
        key = -score  # smaller is better from here on
        tie = score * (1.0 + tie_tolerance) >= score.max()
    else:
        key = score
        tie = score <= score.min() * (1.0 + tie_tolerance)
    dims = sum((getattr(table, d)[fit_idx] > 1).astype(np.int64) for d in PARALLEL_DIMENSIONS)
    zero = np.zeros(fit_idx.size)

    def among_ties(values: np.ndarray) -> np.ndarray:
        return np.where(tie, values, zero)

    order = np.lexsort(
        (
            fit_idx,
            mem,
            key,
            among_ties(mem),
            among_ties(table.tp[fit_idx] * table.pp[fit_idx]),
            among_ties(table.cp[fit_idx]),
            among_ties(table.vp[fit_idx]),
            among_ties(dims),
            ~tie,
        )
    )
    return order, int(np.count_nonzero(tie))
