"""Budgets and deadlines: the cheapest chip, chip count, layout and price kind that trains a token
budget by a deadline.

For each target (a chip in a system, `DeadlineTarget`) and each candidate chip count
(`candidate_counts`: 1 chip, one node of the system, then node x 2^k up to `max_chips`, default
`DEFAULT_MAX_CHIPS`, never past the system's documented limit), `plan_training` finds the best
layout by throughput: at a fixed count and price the cheapest layout is the fastest, since cost is
price / throughput (`search.objectives`). That layout's time to train `tokens` is

    time_s = tokens / (tokens_per_s_per_chip * chips),

and for every price kind of the system (`price_kinds`; default `DEFAULT_PRICE_KINDS`), its bill is

    cost_usd = price per chip-hour * billed chips * billed hours            (`economics.billing`:
               whole instances of the quoted size; capacity blocks in whole days).

Each price is the catalog's own of that kind and grade (`economics.prices.price_for`): a kind a
system has no price for, or one weaker than `min_quality`, is no option, never filled from another
kind or grade; a target with no price at all is reported as "no price" with its times. An option
meets the deadline when its point-estimate time is at most `deadline_s`; the answer is the
cheapest option that meets it (ties: fewer chips, then the shorter time, then the order of the
targets and of `PRICE_KINDS`). When none meets it, the answer is None and `fastest` says how close
the fastest priced option comes.

Range: the estimate's 80% interval of throughput, [x e^q_lo, x e^q_hi] (`estimate.uncertainty`),
gives the time in [T e^-q_hi, T e^-q_lo] and the cost as the bill over those two times (billing is
monotone in time). `meets_at_slow_end` says whether the slow end still meets the deadline; the
choice itself uses the point estimate.

Committed-use kinds (committed-1y, committed-3y) are not in the default kinds: they are the hourly
rate of a 1- or 3-year contract, and a run priced at that rate alone hides the commitment; a team
that holds one asks for it with `price_kinds=("committed-1y",)`. Left out: everything
`economics.billing` leaves out (start-up time, spot interruptions, minimums), storage and network
charges, and chip counts between the listed ones (2 or 4 GPUs of an 8-GPU node, odd node counts).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from twofold.checks import one_of, positive, positive_int
from twofold.economics.billing import billed_chips, billed_seconds, billing_unit_chips
from twofold.economics.prices import PRICE_KINDS, Price, check_min_quality, cost_usd, price_for
from twofold.errors import InputError
from twofold.hardware.scale import scale_limit, scale_notes
from twofold.hardware.types import Chip, System
from twofold.parallel.layout import Layout, TrainingWorkload
from twofold.search.enumerate import EnumerateOptions
from twofold.search.plan import Evaluator, RankedLayout, plan_training
from twofold.workload.model import ModelConfig

__all__ = [
    "DEFAULT_MAX_CHIPS",
    "DEFAULT_PRICE_KINDS",
    "DeadlineOption",
    "DeadlineResult",
    "DeadlineTarget",
    "TargetOutcome",
    "candidate_counts",
    "one_chip_instances",
    "parse_deadline",
    "plan_deadline",
]

DEFAULT_MAX_CHIPS = 1024
DEFAULT_PRICE_KINDS: tuple[str, ...] = ("on-demand", "capacity-block", "spot")
_UNIT_S = {"m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(min|m|h|d)\s*$", re.IGNORECASE)
_DEADLINE_RULE = "must be a positive duration with a unit m, h or d, e.g. 90m, 48h, 3d"


def parse_deadline(text: str | float) -> float:
    """Seconds of a deadline: "90m", "48h", "3d" (a number of seconds passes through)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        match = _DURATION.match(str(text))
        if match is None:
            raise InputError("deadline", text, _DEADLINE_RULE)
        seconds = float(match.group(1)) * _UNIT_S[match.group(2).lower()]
    if not math.isfinite(seconds) or seconds <= 0:
        raise InputError("deadline", text, _DEADLINE_RULE)
    return seconds


@dataclass(frozen=True, kw_only=True, slots=True)
class DeadlineTarget:
    """A chip in a system to consider; `label` is how it was named (`trn2`, `trn2@trn2-ultraserver`)."""

    label: str
    system: System
    chip: Chip
    stack: Any = None  # `cost.stack` id, file or Stack; None = `auto`
    options: EnumerateOptions | None = None
    # One price to use instead of the catalog's kinds (compare's row price, already resolved with
    # its kind, grade and overrides); None: every kind of `plan_deadline`'s `price_kinds`.
    price: Price | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class DeadlineOption:
    """One way to train the budget: a target at a chip count, its best layout, one price kind.

    `price.usd_per_chip_hour` None (a target without any price) leaves every $ field None.
    Ranges are the 80% intervals of the module docstring, (low, high)."""

    label: str
    chip: str
    system: str
    chips: int
    layout: Layout
    tokens_per_s_per_chip: float
    tokens_per_s_per_chip_range: tuple[float, float]
    mfu: float
    memory_per_chip_gib: float
    time_s: float
    time_range_s: tuple[float, float]
    price: Price
    billing_unit_chips: int
    billed_chips: int
    billed_s: float
    cost_usd: float | None
    cost_range_usd: tuple[float, float] | None
    meets_deadline: bool
    meets_at_slow_end: bool
    evidence: str  # the basis of the interval (`estimate.uncertainty.Evidence.basis`)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["layout"] = asdict(self.layout)
        out["price"] = self.price.to_dict()
        for key in ("tokens_per_s_per_chip_range", "time_range_s", "cost_range_usd"):
            out[key] = None if out[key] is None else list(out[key])
        out["time_h"] = self.time_s / 3600.0
        return out


@dataclass(frozen=True, kw_only=True, slots=True)
class TargetOutcome:
    """One target's answer: `best` (its cheapest option that meets the deadline), else `fastest`
    (its fastest option, the cheapest kind of it). `status`: "meets", "misses", "no price" or
    "does not fit"; `notes` say which prices were unknown, which counts did not fit or scale."""

    label: str
    chip: str
    system: str
    status: str
    best: DeadlineOption | None
    fastest: DeadlineOption | None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "chip": self.chip,
            "system": self.system,
            "status": self.status,
            "best": None if self.best is None else self.best.to_dict(),
            "fastest": None if self.fastest is None else self.fastest.to_dict(),
            "notes": list(self.notes),
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class DeadlineResult:
    """The cheapest option over every target that meets the deadline (`best`, None if none does),
    the fastest priced option (`fastest`), every priced option (meeting ones cheapest first, then
    the rest fastest first) and one outcome per target in the order given."""

    model: str
    workload: TrainingWorkload
    tokens: float
    deadline_s: float
    price_kinds: tuple[str, ...]
    min_quality: str | None
    max_chips: int
    best: DeadlineOption | None
    fastest: DeadlineOption | None
    options: tuple[DeadlineOption, ...]
    targets: tuple[TargetOutcome, ...]
    notes: tuple[str, ...]
    elapsed_s: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "workload": self.workload.to_dict(),
            "objective": "cost",
            "tokens": self.tokens,
            "deadline_s": self.deadline_s,
            "deadline_h": self.deadline_s / 3600.0,
            "price_kinds": list(self.price_kinds),
            "min_quality": self.min_quality,
            "max_chips": self.max_chips,
            "meets_deadline": self.best is not None,
            "best": None if self.best is None else self.best.to_dict(),
            "fastest": None if self.fastest is None else self.fastest.to_dict(),
            "targets": [t.to_dict() for t in self.targets],
            "options": [o.to_dict() for o in self.options],
            "notes": list(self.notes),
            "elapsed_s": self.elapsed_s,
        }


def one_chip_instances(chip: Chip) -> tuple[System, ...]:
    """The catalog's priced one-chip instances of `chip` other than its standard system
    (trn1.2xlarge for trn1, p5.4xlarge and Lambda's 1x H100 for h100): `twofold plan --deadline`
    tries each as its own target (`chip@system`) when the chip is named alone, so a one-chip run
    is billed one chip where such an instance is sold, not a whole node."""
    from twofold.hardware.catalog import systems_for_chip

    return tuple(
        s
        for s in systems_for_chip(chip)
        if s.id != chip.default_system
        and s.max_chips == 1
        and any(q.usd_per_chip_hour is not None for q in s.prices.values())
    )


def candidate_counts(system: System, max_chips: int = DEFAULT_MAX_CHIPS) -> tuple[int, ...]:
    """1 chip, one node, then node x 2^k, up to `max_chips` and the system's documented limit
    (`max_chips` of the catalog, and the largest domain of a system without a scale-out network);
    `max_chips` itself when it is below one node."""
    cap = max_chips
    for limit in (system.max_chips, scale_limit(system)):
        if limit is not None:
            cap = min(cap, limit)
    node = max(system.node_chips, 1)
    counts = {1}
    if cap < node:
        counts.add(cap)
    n = node
    while n <= cap:
        counts.add(n)
        n *= 2
    return tuple(sorted(c for c in counts if c <= cap))


def _stack_id(tgt: DeadlineTarget) -> str:
    from twofold.cost.calibration import shipped_calibration

    try:
        return str(shipped_calibration().with_stack(tgt.stack).stack_for(tgt.chip).id)
    except (AttributeError, ValueError, KeyError):
        return "auto"


def _option(
    tgt: DeadlineTarget,
    best: RankedLayout,
    chips: int,
    tokens: float,
    deadline_s: float,
    price: Price,
    interval: Any,
) -> DeadlineOption:
    thr = best.step.tokens_per_s_per_chip
    thr_lo, thr_hi = interval.tokens_per_s_per_chip_range
    seconds = tokens / (thr * chips)
    span = (tokens / (thr_hi * chips), tokens / (thr_lo * chips))
    unit = billing_unit_chips(tgt.system, price)
    paid = billed_chips(chips, unit)
    cost = cost_usd(price, paid, billed_seconds(seconds, price.kind))
    cost_range = None
    if cost is not None:
        low, high = (cost_usd(price, paid, billed_seconds(s, price.kind)) for s in span)
        cost_range = (float(low or 0.0), float(high or 0.0))
    return DeadlineOption(
        label=tgt.label,
        chip=tgt.chip.id,
        system=tgt.system.id,
        chips=chips,
        layout=best.layout,
        tokens_per_s_per_chip=thr,
        tokens_per_s_per_chip_range=(float(thr_lo), float(thr_hi)),
        mfu=best.step.mfu,
        memory_per_chip_gib=best.step.memory_per_chip_gib,
        time_s=seconds,
        time_range_s=span,
        price=price,
        billing_unit_chips=unit,
        billed_chips=paid,
        billed_s=billed_seconds(seconds, price.kind),
        cost_usd=cost,
        cost_range_usd=cost_range,
        meets_deadline=seconds <= deadline_s,
        meets_at_slow_end=span[1] <= deadline_s,
        evidence=interval.evidence.basis,
    )


def _order_key(o: DeadlineOption) -> tuple[Any, ...]:
    """Meeting options cheapest first (then fewer chips, shorter time); the others fastest first."""
    if o.meets_deadline:
        return (0, o.cost_usd, o.chips, o.time_s, PRICE_KINDS.index(o.price.kind))
    return (1, o.time_s, o.cost_usd, o.chips, PRICE_KINDS.index(o.price.kind))


def _fastest(options: Sequence[DeadlineOption]) -> DeadlineOption | None:
    if not options:
        return None
    return min(options, key=lambda o: (o.time_s, o.cost_usd if o.cost_usd is not None else 0.0, o.chips))


def _target_outcome(
    model: ModelConfig,
    tgt: DeadlineTarget,
    workload: TrainingWorkload,
    *,
    tokens: float,
    deadline_s: float,
    kinds: Sequence[str],
    prices: Mapping[str, float] | None,
    min_quality: str | None,
    max_chips: int,
    evaluate: Evaluator | None,
    plan_kwargs: Mapping[str, Any],
) -> tuple[TargetOutcome, list[DeadlineOption]]:
    from twofold.estimate.uncertainty import uncertainty_for

    notes: list[str] = []
    if prices and tgt.chip.id in prices:
        kinds = kinds[:1]  # a user price is one price, whatever the kind
    if tgt.price is not None:
        quotes = [tgt.price]
    else:
        quotes = [price_for(tgt.system, tgt.chip, prices, k, min_quality=min_quality) for k in kinds]
    priced = [p for p in quotes if p.usd_per_chip_hour is not None]
    unknown = [
        f"{p.kind} ({p.note.removeprefix(f'{tgt.system.id}: ').rstrip('.')})"
        for p in quotes
        if p.usd_per_chip_hour is None
    ]
    if unknown:
        notes.append("no price of kind " + ", ".join(unknown))
    stack_id = _stack_id(tgt)
    options: list[DeadlineOption] = []
    unfit: list[int] = []
    for n in candidate_counts(tgt.system, max_chips):
        result = plan_training(
            model, tgt.system, n, workload, chip=tgt.chip, top_k=1, evaluate=evaluate,
            stack=tgt.stack, options=tgt.options, **plan_kwargs,
        )  # fmt: skip
        if result.best is None:
            unfit.append(n)
            continue
        notes.extend(s for s in scale_notes(tgt.system, n) if s not in notes)
        thr = result.best.step.tokens_per_s_per_chip
        interval = uncertainty_for(
            tgt.chip.id, None, stack_id, {"tokens_per_s_per_chip": thr}, seq_len=workload.seq_len
        )
        for price in priced or quotes[:1]:
            options.append(_option(tgt, result.best, n, tokens, deadline_s, price, interval))
    if unfit:
        notes.append(f"no layout fits in memory on {', '.join(map(str, unfit))} chip(s)")
    meeting = sorted((o for o in options if o.meets_deadline and o.cost_usd is not None), key=_order_key)
    fastest = _fastest([o for o in options if o.cost_usd is not None] or options)
    if not options:
        status = "does not fit"
    elif not priced:
        status = "no price"
    else:
        status = "meets" if meeting else "misses"
    outcome = TargetOutcome(
        label=tgt.label,
        chip=tgt.chip.id,
        system=tgt.system.id,
        status=status,
        best=meeting[0] if meeting else None,
        fastest=fastest,
        notes=tuple(notes),
    )
    return outcome, [o for o in options if o.cost_usd is not None]


def plan_deadline(
    model: ModelConfig | str,
    targets: Sequence[DeadlineTarget],
    workload: TrainingWorkload,
    *,
    tokens: float,
    deadline_s: float,
    price_kinds: Sequence[str] | None = None,
    prices: Mapping[str, float] | None = None,
    min_quality: str | None = None,
    max_chips: int | None = None,
    evaluate: Evaluator | None = None,
    **plan_kwargs: Any,
) -> DeadlineResult:
    """The cheapest option over `targets` that trains `tokens` by `deadline_s` (module docstring).

    `price_kinds` (default `DEFAULT_PRICE_KINDS`) are the kinds tried on every target; `prices`
    ({chip id: USD per chip-hour}) replace the catalog for a chip (one option per count, billed by
    the system's node); `min_quality` (A, B, C) makes weaker catalog prices unknown. `max_chips`
    bounds the counts (default `DEFAULT_MAX_CHIPS`). `evaluate` is `plan_training`'s estimator
    seam; `plan_kwargs` go to `plan_training` (mem_headroom, tie_tolerance, allow_long_context).
    """
    t0 = time.perf_counter()
    positive("tokens", tokens, "must be a finite positive number of tokens", finite=True)
    deadline_s = parse_deadline(deadline_s)
    kinds = tuple(DEFAULT_PRICE_KINDS if price_kinds is None else price_kinds)
    for kind in kinds:
        one_of("price_kind", kind, PRICE_KINDS)
    if not kinds:
        raise InputError("price_kind", kinds, "name at least one price kind")
    min_quality = check_min_quality(min_quality)
    cap = DEFAULT_MAX_CHIPS if max_chips is None else max_chips
    positive_int("chips", cap, "must be a positive integer (the most chips to consider)")
    if not targets:
        raise InputError("on", "", "name at least one chip")
    if isinstance(model, str):
        from twofold.workload import get_model

        model = get_model(model)
    outcomes, options = [], []
    for tgt in targets:
        outcome, priced = _target_outcome(
            model, tgt, workload, tokens=float(tokens), deadline_s=deadline_s, kinds=kinds, prices=prices,
            min_quality=min_quality, max_chips=cap, evaluate=evaluate, plan_kwargs=plan_kwargs,
        )  # fmt: skip
        outcomes.append(outcome)
        options.extend(priced)
    options.sort(key=_order_key)  # stable: ties keep the order of the targets
    best = options[0] if options and options[0].meets_deadline else None
    notes = []
    if "spot" in kinds:
        notes.append("spot: interruptible; its time assumes no interruption")
    if "capacity-block" in kinds:
        notes.append("capacity-block: reserved and billed in whole days (1-14), then whole weeks")
    return DeadlineResult(
        model=model.name,
        workload=workload,
        tokens=float(tokens),
        deadline_s=deadline_s,
        price_kinds=kinds,
        min_quality=min_quality,
        max_chips=cap,
        best=best,
        fastest=_fastest(options),
        options=tuple(options),
        targets=tuple(outcomes),
        notes=tuple(notes),
        elapsed_s=time.perf_counter() - t0,
    )
