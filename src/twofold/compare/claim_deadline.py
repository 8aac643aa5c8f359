"""`claim --deadline`: a cost claim read as what two chips' cheapest runs cost to train a token
budget by a deadline.

Without a deadline a perf-per-dollar claim compares the two chips at the workload's chip count:
throughput per chip over price per chip-hour. A team with a deadline asks something else: what
does the cheapest run that finishes `tokens` by the deadline cost on each chip? For each training
workload (model, sequence length, batch) both chips get `search.plan_deadline` with the workload's
chip count as the cap (`candidate_counts`: 1 chip, one node, then node x 2^k up to that count and
the system's documented limit), at the claim's price (the `Target`'s: kind, grade, `--price`), so
each chip's answer is its cheapest count and layout that meets the deadline, billed in whole
instances (`economics.billing`). The claim's ratio for the workload is then

    ratio = cost_B / cost_A      ("A has N x the perf per dollar of B" = "A is N x cheaper than B"),

the same direction as the perf-per-dollar ratio at a fixed count (A's throughput per dollar over
B's, which for the same work is B's bill over A's).

Range: as the fixed-count ratio (`compare.ranges.ratio_range`, the two chips' throughput intervals
in quadrature, or the sibling rule for one family under one stack), applied at the two chosen
options: the bill is the price times the billed time, so its error is the throughput's. Left out
of the range: that at the slow end of a chip's interval another count (or none) may be the
cheapest that meets the deadline, and the whole-day rounding of a capacity block.

A chip that cannot meet the deadline within the cap (`misses`), that fits no layout, or whose price
is unknown gives no ratio: the row is not evaluated, with the reason (an unknown price is never
filled, so the claim "cannot be checked" then).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from twofold.compare.plans import Target
from twofold.compare.ranges import chip_uncertainty, ratio_range, siblings, thin_evidence
from twofold.parallel.layout import TrainingWorkload
from twofold.search.deadline import DeadlineOption, DeadlineTarget, TargetOutcome, plan_deadline
from twofold.units import SECONDS_PER_HOUR
from twofold.workload.model import ModelConfig

__all__ = ["DeadlineRatio", "deadline_cost_ratio", "deadline_json", "option_summary"]


@dataclass(frozen=True, kw_only=True, slots=True)
class DeadlineRatio:
    """The cost ratio of one workload under a deadline (module docstring); `ratio` None: `note`
    says why (a chip misses the deadline, fits nothing, or has no price)."""

    ratio: float | None
    ratio_range: tuple[float, float] | None
    thin_evidence: str
    outcome_a: TargetOutcome
    outcome_b: TargetOutcome
    note: str


def option_summary(label: str, o: DeadlineOption) -> str:
    """ "trn2 x 16 (billed 16) $123.45 in 40.1 h": one chip's chosen option."""
    cost = "no price" if o.cost_usd is None else f"${o.cost_usd:,.2f}"
    return f"{label} x {o.chips} (billed {o.billed_chips}) {cost} in {o.time_s / SECONDS_PER_HOUR:.3g} h"


def _why_none(t: TargetOutcome, tokens: float, deadline_s: float, cap: int) -> str:
    if t.status == "no price":
        return f"{t.label}: no price ({'; '.join(t.notes)})"
    if t.status == "does not fit":
        return f"{t.label}: no layout fits on up to {cap} chips"
    fast = t.fastest
    tail = "" if fast is None else f"; fastest {option_summary(t.label, fast)}"
    hours = deadline_s / SECONDS_PER_HOUR
    return f"{t.label} cannot train {tokens:.3g} tokens by {hours:.3g} h on up to {cap} chips{tail}"


def deadline_cost_ratio(
    a: Target,
    b: Target,
    model: ModelConfig | str,
    workload: TrainingWorkload,
    *,
    chips: int,
    tokens: float,
    deadline_s: float,
) -> DeadlineRatio:
    """B's cheapest bill over A's for `tokens` by `deadline_s`, each on up to `chips` chips at its
    target's price (module docstring)."""
    targets = [
        DeadlineTarget(
            label=t.label, system=t.system, chip=t.chip, stack=t.stack, options=t.options, price=t.price
        )
        for t in (a, b)
    ]
    result = plan_deadline(model, targets, workload, tokens=tokens, deadline_s=deadline_s, max_chips=chips)
    oa, ob = result.targets
    missing = [_why_none(t, tokens, deadline_s, chips) for t in (oa, ob) if t.best is None]
    if missing:
        note = "; ".join(missing)
        return DeadlineRatio(
            ratio=None, ratio_range=None, thin_evidence="", outcome_a=oa, outcome_b=ob, note=note
        )
    best_a, best_b = oa.best, ob.best
    assert best_a is not None and best_b is not None and best_a.cost_usd and best_b.cost_usd
    ratio = best_b.cost_usd / best_a.cost_usd
    seq = workload.seq_len
    ua = chip_uncertainty(a, {"tokens_per_s_per_chip": best_a.tokens_per_s_per_chip}, seq_len=seq)
    ub = chip_uncertainty(b, {"tokens_per_s_per_chip": best_b.tokens_per_s_per_chip}, seq_len=seq)
    return DeadlineRatio(
        ratio=ratio,
        ratio_range=ratio_range(ratio, ua, ub, siblings=siblings(a, b)),
        thin_evidence=thin_evidence({a.label: ua, b.label: ub}),
        outcome_a=oa,
        outcome_b=ob,
        note=f"{option_summary(a.label, best_a)}; {option_summary(b.label, best_b)}",
    )


def deadline_json(r: DeadlineRatio) -> Mapping[str, Any]:
    """The row's `deadline` field: each chip's outcome (`TargetOutcome.to_dict`)."""
    return {"a": r.outcome_a.to_dict(), "b": r.outcome_b.to_dict()}
