"""`claim`: parse a vendor claim ("trn2 is 4x trn1") and check it on a set of training workloads.

A claim names chip A, a multiplier and chip B, and a metric (`compare.claim_parse`).

Each workload (`CLAIM_WORKLOADS`: small to frontier, dense and MoE, short and long sequences, at
several chip counts) is compared at the same chip count (`compare.compare_targets`, chip B the
reference), and the claim holds for it when the modelled ratio is at least (1 - tolerance) times
the claimed one. For training at a fixed chip count and batch the step-time speedup equals the
per-chip throughput ratio, so `latency` reads the same ratio as `throughput`. Inference
workloads (`search.plan_inference`, each chip at its best serving plan) are
compared on output tokens/s per chip (throughput, perf-per-dollar) or end-to-end request latency
(latency), with the factors of `compare.infer_claim`.

The answer: per workload the ratio, its 80% range (`compare.ranges`: the two chips' intervals from
the held-out error of the shipped rows, combined in quadrature) and the dominant cause (the factor
with the largest |log|, `compare.factors`); over the set the distribution (min, median, max) and a
verdict. Each workload has one of three verdicts: "holds" when the whole range is at or above the
threshold, "does not hold" when it is entirely below, "cannot tell at this evidence" when it
straddles it (naming the chip whose evidence is thin). `holds` keeps the point estimate's answer
(ratio >= threshold); the verdicts, per workload and overall, are the ranges'.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from twofold.checks import fraction
from twofold.compare.claim_parse import CLAIM_METRICS, Claim, parse_claim
from twofold.compare.compare import compare_targets
from twofold.compare.factors import dominant_factor
from twofold.compare.plans import PlanCache, Target, target
from twofold.compare.ranges import (
    CANNOT_TELL,
    DOES_NOT_HOLD,
    HOLDS,
    chip_uncertainty,
    merge_thin,
    range_verdict,
)
from twofold.compare.ranges import ratio_range as combined_range
from twofold.compare.ranges import thin_evidence as thin_of
from twofold.compare.workloads import CLAIM_WORKLOADS, ClaimWorkload
from twofold.errors import InputError, NoAnswer
from twofold.parallel.layout import TrainingWorkload
from twofold.units import SECONDS_PER_HOUR
from twofold.workload.finetune import Finetune

__all__ = [
    "CLAIM_METRICS",
    "CLAIM_WORKLOADS",
    "Claim",
    "ClaimResult",
    "ClaimRow",
    "ClaimWorkload",
    "check_deadline_claim",
    "evaluate_claim",
    "evaluate_ratio",
    "overall_verdict",
    "parse_claim",
]

DEFAULT_TOLERANCE = 0.1
# The sweep engine's planner of a claim's scenarios (`twofold.sweep.claim_run.run_claim_plans`):
# fills the plan caches it is given and returns the run's summary.
PlanRunner = Callable[..., Mapping[str, Any]]


@dataclass(frozen=True, kw_only=True, slots=True)
class ClaimRow:
    """The claim on one workload: the modelled ratio (None: not evaluated, see `note`)."""

    workload: ClaimWorkload
    ratio: float | None
    holds: bool | None
    factors: Mapping[str, float] | None
    dominant_cause: str | None
    secondary_cause: str | None  # the largest factor after the dominant one
    layout_a: Mapping[str, Any] | None
    layout_b: Mapping[str, Any] | None
    note: str = ""
    ratio_range: tuple[float, float] | None = None  # 80% range of `ratio` (`compare.ranges`)
    verdict: str | None = None  # holds / does not hold / cannot tell at this evidence (the range's)
    thin_evidence: str = ""  # "trn2: inherited from AWS Trainium": a chip without rows of its own
    # Serving rows: each chip's $ per million output tokens at its price of `price_kind` (None: unknown)
    usd_per_million_output_tokens: Mapping[str, float | None] | None = None
    price_kind: str = ""
    # With a deadline (`compare.claim_deadline`): each chip's cheapest option that meets it.
    deadline: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "workload": asdict(self.workload),
            "ratio": self.ratio,
            "ratio_range": None if self.ratio_range is None else list(self.ratio_range),
            "holds": self.holds,
            "verdict": self.verdict,
            "thin_evidence": self.thin_evidence,
            "factors": None if self.factors is None else dict(self.factors),
            "dominant_cause": self.dominant_cause,
            "secondary_cause": self.secondary_cause,
            "layout_a": None if self.layout_a is None else dict(self.layout_a),
            "layout_b": None if self.layout_b is None else dict(self.layout_b),
            "note": self.note,
            "usd_per_million_output_tokens": (
                None if (usd := self.usd_per_million_output_tokens) is None else dict(usd)
            ),
            "price_kind": self.price_kind,
            **({} if self.deadline is None else {"deadline": dict(self.deadline)}),
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class ClaimResult:
    """The claim over the workload set; `summary` is None when no workload could be evaluated."""

    claim: Claim
    ratio_metric: str
    tolerance: float
    rows: tuple[ClaimRow, ...]
    summary: Mapping[str, float] | None
    holds_for: int
    evaluated: int
    verdict: str
    notes: tuple[str, ...] = field(default_factory=tuple)
    # holds / does not hold / holds on some workloads / cannot tell at this evidence (the ranges')
    overall: str = ""
    run: Mapping[str, Any] | None = None  # the sweep engine's summary; None when planned in process
    finetune: Finetune | None = None  # LoRA/QLoRA of every training workload; None: full training
    # `claim --deadline`: the token budget and the deadline every ratio is a bill for; None: none
    tokens: float | None = None
    deadline_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        fine: dict[str, Any] = {} if self.finetune is None else {"finetune": self.finetune.to_dict()}
        if self.deadline_s is not None:
            fine |= {"tokens": self.tokens, "deadline_s": self.deadline_s}
        return {
            "claim": asdict(self.claim),
            **fine,
            "ratio_metric": self.ratio_metric,
            "tolerance": self.tolerance,
            "threshold": (1.0 - self.tolerance) * self.claim.multiplier,
            "rows": [r.to_dict() for r in self.rows],
            "summary": None if self.summary is None else dict(self.summary),
            "holds_for": self.holds_for,
            "evaluated": self.evaluated,
            "verdict": self.verdict,
            "overall": self.overall,
            "notes": list(self.notes),
            "run": None if self.run is None else dict(self.run),
        }


def _causes(factors: Mapping[str, float] | None) -> dict[str, Any]:
    """The dominant cause (largest |log factor|) and the next one after it."""
    if factors is None:
        return {"dominant_cause": None, "secondary_cause": None}
    first = dominant_factor(factors)
    return {
        "dominant_cause": first,
        "secondary_cause": dominant_factor({k: v for k, v in factors.items() if k != first}),
    }


def _inference_row(
    a: Target, b: Target, w: ClaimWorkload, metric: str, threshold: float, cache: dict
) -> ClaimRow:
    from twofold.compare.infer_claim import inference_ratio

    r = inference_ratio(
        a,
        b,
        model=w.model,
        chips=w.chips,
        input_tokens=w.input_tokens,
        output_tokens=w.output_tokens,
        metric=metric,
        cache=cache,
    )
    ratio = r.ratio
    ranged: dict[str, Any] = {}
    if ratio is not None:
        serving = {"output_tokens_per_s": 1.0}  # the relative interval: any positive value
        ua, ub = chip_uncertainty(a, serving), chip_uncertainty(b, serving)
        ranged = _ranged(combined_range(ratio, ua, ub), thin_of({a.label: ua, b.label: ub}), threshold)
    return ClaimRow(
        workload=w,
        ratio=ratio,
        holds=None if ratio is None else ratio >= threshold,
        factors=r.factors,
        **_causes(r.factors),
        layout_a=r.layout_a,
        layout_b=r.layout_b,
        note=r.note,
        usd_per_million_output_tokens=r.usd_per_million_output_tokens or None,
        price_kind=a.price.kind,
        **ranged,
    )


def _ranged(bounds: tuple[float, float] | None, thin: str, threshold: float) -> dict[str, Any]:
    """The range fields of a `ClaimRow`: the range, its verdict and the thin evidence."""
    if bounds is None:
        return {}
    return {"ratio_range": bounds, "verdict": range_verdict(*bounds, threshold), "thin_evidence": thin}


def _row(
    a: Target,
    b: Target,
    w: ClaimWorkload,
    key: str,
    threshold: float,
    cache: PlanCache,
    finetune: Finetune | None = None,
) -> ClaimRow:
    from twofold.workload.registry import get_model

    workload = TrainingWorkload(
        global_batch=w.global_batch, seq_len=w.seq_len, precision="bf16", finetune=finetune
    )
    try:
        result = compare_targets(
            get_model(w.model), [a, b], chips=w.chips, reference=b.label, workload=workload, cache=cache
        )
    except (InputError, NoAnswer) as exc:  # the reference chip cannot run this workload
        return _not_evaluated(w, str(exc))
    ra, rb = result.row(a.label), result.row(b.label)
    layouts: dict[str, Any] = {
        "layout_a": None if ra.layout is None else asdict(ra.layout),
        "layout_b": None if rb.layout is None else asdict(rb.layout),
    }
    ratio = ra.ratio_to_reference.get(key)
    if ratio is None:
        return _not_evaluated(w, _missing(a, b, key, ra.notes), **layouts)
    factors = ra.factors[key]
    return ClaimRow(
        workload=w,
        ratio=ratio,
        holds=ratio >= threshold,
        factors=factors,
        **_causes(factors),
        **layouts,
        **_ranged(ra.ratio_range.get(key), ra.thin_evidence, threshold),
    )


def _deadline_row(
    a: Target,
    b: Target,
    w: ClaimWorkload,
    threshold: float,
    budget: tuple[float, float],
    finetune: Finetune | None = None,
) -> ClaimRow:
    """A cost claim on one workload under a deadline (`compare.claim_deadline`): B's cheapest
    bill for the budget by the deadline over A's, each on up to the workload's chips."""
    from twofold.compare.claim_deadline import deadline_cost_ratio, deadline_json

    workload = TrainingWorkload(
        global_batch=w.global_batch, seq_len=w.seq_len, precision="bf16", finetune=finetune
    )
    tokens, deadline_s = budget
    try:
        r = deadline_cost_ratio(a, b, w.model, workload, chips=w.chips, tokens=tokens, deadline_s=deadline_s)
    except (InputError, NoAnswer) as exc:
        return _not_evaluated(w, str(exc))
    layouts: dict[str, Any] = {
        key: None if o.best is None else asdict(o.best.layout)
        for key, o in (("layout_a", r.outcome_a), ("layout_b", r.outcome_b))
    }
    if r.ratio is None:
        row = _not_evaluated(w, r.note, **layouts)
        return replace(row, deadline=deadline_json(r), price_kind=a.price.kind)
    return ClaimRow(
        workload=w,
        ratio=r.ratio,
        holds=r.ratio >= threshold,
        factors=None,
        dominant_cause=None,
        secondary_cause=None,
        **layouts,
        note=r.note,
        **_ranged(r.ratio_range, r.thin_evidence, threshold),
        price_kind=a.price.kind,
        deadline=deadline_json(r),
    )


def check_deadline_claim(
    claim: Claim, tokens: float | None, deadline_s: float | str | None
) -> tuple[float, float] | None:
    """(tokens, deadline seconds) of a `claim --deadline`, None without one. A deadline applies
    to cost claims only (perf-per-dollar, "cheaper"): it decides which chip count and price kind is
    cheapest, not a chip's throughput or perf/W at a fixed count; anything else exits 2."""
    from twofold.search.deadline import parse_deadline

    if deadline_s is None:
        if tokens is not None:
            raise InputError("tokens", tokens, "a claim's token budget goes with --deadline")
        return None
    seconds = parse_deadline(deadline_s)
    if claim.metric != "perf-per-dollar":
        raise InputError(
            "deadline",
            deadline_s,
            f"applies to cost claims only (perf-per-dollar, 'cheaper'), not {claim.metric}: a deadline "
            "decides which chip count and price kind is cheapest, not throughput or perf/W at a fixed count",
        )
    number = isinstance(tokens, (int, float)) and not isinstance(tokens, bool)
    if tokens is None or not number or not tokens > 0:
        raise InputError("tokens", tokens, "--deadline needs a token budget: --tokens N")
    return float(tokens), seconds


def _not_evaluated(
    w: ClaimWorkload,
    reason: str,
    *,
    layout_a: Mapping[str, Any] | None = None,
    layout_b: Mapping[str, Any] | None = None,
) -> ClaimRow:
    return ClaimRow(
        workload=w,
        ratio=None,
        holds=None,
        factors=None,
        dominant_cause=None,
        secondary_cause=None,
        layout_a=layout_a,
        layout_b=layout_b,
        note=f"not evaluated: {reason}",
    )


def _missing(a: Target, b: Target, key: str, notes: Sequence[str]) -> str:
    """Why a ratio is unknown: the figure it needs that is unpublished, or the layout note."""
    if key == "perf_per_watt":
        chips = [t.label for t in (a, b) if t.power.tdp_w is None]
        if chips:
            return f"power unknown for {', '.join(chips)} (no published TDP; pass --power CHIP=W)"
    if key == "perf_per_dollar":
        unpriced = [t for t in (a, b) if t.price.usd_per_chip_hour is None]
        if unpriced:
            names = ", ".join(t.label for t in unpriced)
            kind = unpriced[0].price.kind
            return f"price unknown for {names} (no published {kind} price; pass --price CHIP=USD)"
    return "; ".join(notes) or "no fitting layout"


def evaluate_ratio(
    claim: Claim,
    a: Target,
    b: Target,
    *,
    workloads: Sequence[ClaimWorkload] = CLAIM_WORKLOADS,
    tolerance: float = DEFAULT_TOLERANCE,
    cache: PlanCache | None = None,
    workers: int | None = None,
    ray_address: str | None = None,
    store: str | Path | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    finetune: Finetune | None = None,
    tokens: float | None = None,
    deadline_s: float | str | None = None,
    plan_runner: PlanRunner | None = None,
) -> ClaimResult:
    """Check `claim` with chip A = `a` and chip B = `b` (objects: catalog or what-if chips).

    With `workers`, `ray_address` or `store` the plans run first on the sweep engine, which the
    caller passes as `plan_runner` (`twofold.sweep.claim_run.run_claim_plans`: a local pool, Ray, a
    sweep store; catalog chips only; the sweep layer sits above this one, so it is handed in, not
    imported), then the rows are computed from them exactly as in process; otherwise everything is
    planned in this process.
    `finetune` (LoRA/QLoRA, `workload.finetune`) makes every training workload a fine-tuning run;
    serving workloads are then left out (serving a fine-tuned model is no fine-tuning run), and a
    model LoRA is not modelled for (MoE) is a row "not evaluated" with the reason.
    `tokens` and `deadline_s` (a cost claim only, `check_deadline_claim`): each training
    workload's ratio is the two chips' cheapest bills for `tokens` by the deadline
    (`compare.claim_deadline`), planned in this process; serving workloads are left out.
    """
    fraction("tolerance", tolerance)
    budget = check_deadline_claim(claim, tokens, deadline_s)
    if budget is not None and (ray_address is not None or store is not None or (workers or 1) > 1):
        raise InputError(
            "deadline", deadline_s, "is planned in this process: leave --workers, --ray and --out unset"
        )
    if finetune is not None or budget is not None:
        workloads = [w for w in workloads if w.phase == "training"]
    if not workloads:
        why = "a fine-tuning claim needs a training workload" if finetune is not None else ""
        raise InputError("workloads", workloads, why or "name at least one workload")
    key = CLAIM_METRICS[claim.metric]
    threshold = (1.0 - tolerance) * claim.multiplier
    cache = {} if cache is None else cache
    run: Mapping[str, Any] | None = None
    unpublished = _missing(a, b, key, ()) if key in ("perf_per_watt", "perf_per_dollar") else ""
    if unpublished and unpublished != "no fitting layout":
        # A figure the metric needs is unpublished: no workload can change that, so none is planned.
        rows = tuple(_not_evaluated(w, unpublished) for w in workloads)
    else:
        serving: dict = {}
        if budget is not None:
            workers = None  # the deadline search plans several counts per chip, in this process
        if workers is not None or ray_address is not None or store is not None:
            if plan_runner is None:
                raise InputError(
                    "plan_runner",
                    None,
                    "workers, ray_address and store run on the sweep engine: pass "
                    "plan_runner=twofold.sweep.claim_run.run_claim_plans",
                )
            run = plan_runner(
                claim.metric,
                (a, b),
                workloads,
                cache=cache,
                serving=serving,
                workers=workers,
                ray_address=ray_address,
                store=store,
                on_progress=on_progress,
                finetune=finetune,
            )
        rows = tuple(
            _inference_row(a, b, w, claim.metric, threshold, serving)
            if w.phase == "inference"
            else _row(a, b, w, key, threshold, cache, finetune)
            if budget is None
            else _deadline_row(a, b, w, threshold, budget, finetune)
            for w in workloads
        )
    ratios = [r.ratio for r in rows if r.ratio is not None]
    held = sum(1 for r in rows if r.holds)
    summary = None
    if ratios:
        summary = {"min": min(ratios), "median": statistics.median(ratios), "max": max(ratios)}
    notes = []
    if finetune is not None:
        ft = finetune.to_dict()
        notes.append(
            f"fine-tuning: {ft['method']} r={ft['rank']} {ft['targets']}, base {ft['base_precision']} on "
            "every training workload; serving workloads left out"
        )
    if budget is not None:
        notes.append(
            f"deadline: each ratio is {claim.chip_b}'s cheapest bill over {claim.chip_a}'s to train "
            f"{budget[0]:.3g} tokens by {budget[1] / SECONDS_PER_HOUR:.3g} h "
            f"({a.price.kind} price; 1 chip, one node, "
            "then node x 2^k up to the workload's chips; whole instances billed); serving workloads left out"
        )
    if claim.metric == "latency":
        notes.append(
            "latency: training step time at the same chip count and batch (= per-chip throughput ratio); "
            "serving end-to-end request latency at each chip's lowest-latency plan"
        )
    if claim.metric == "perf-per-watt" and any(w.phase == "inference" for w in workloads):
        notes.append("perf/W of serving is not modelled yet: inference workloads are not evaluated for it")
    return ClaimResult(
        claim=claim,
        ratio_metric=key,
        tolerance=tolerance,
        rows=rows,
        summary=summary,
        holds_for=held,
        evaluated=len(ratios),
        verdict=_verdict(claim, rows, summary, held, threshold),
        notes=tuple(notes),
        run=run,
        overall=overall_verdict(rows),
        finetune=finetune,
        tokens=None if budget is None else budget[0],
        deadline_s=None if budget is None else budget[1],
    )


def overall_verdict(rows: Sequence[ClaimRow]) -> str:
    """The ranges' verdict over the evaluated workloads: "holds" (every one holds), "does not hold"
    (none does), "holds on some workloads" (each one decided, some each way), otherwise "cannot
    tell at this evidence"; "" when no workload was evaluated."""
    verdicts = {r.verdict for r in rows if r.ratio is not None}
    if not verdicts:
        return ""
    if verdicts == {HOLDS}:
        return HOLDS
    if verdicts == {DOES_NOT_HOLD}:
        return DOES_NOT_HOLD
    if CANNOT_TELL in verdicts or None in verdicts:
        return CANNOT_TELL
    return "holds on some workloads"


def _verdict(
    claim: Claim, rows: Sequence[ClaimRow], summary: Mapping[str, float] | None, held: int, threshold: float
) -> str:
    said = f"{claim.chip_a} = {claim.multiplier:.3g}x {claim.chip_b} ({claim.metric})"
    if summary is None:
        reason = next((r.note for r in rows if r.note), "no workload could be evaluated")
        return f"cannot be checked: {said}; {reason}"
    spread = f"modelled {summary['min']:.2f}x to {summary['max']:.2f}x, median {summary['median']:.2f}x"
    evaluated = [r for r in rows if r.ratio is not None]
    n = len(evaluated)
    count = {v: sum(1 for r in evaluated if r.verdict == v) for v in (HOLDS, DOES_NOT_HOLD, CANNOT_TELL)}
    point = f"point estimates >= {threshold:.2f}x on {held} of {n}"
    overall = overall_verdict(rows)
    if overall == HOLDS:
        return f"holds on all {n} workloads (80% range >= {threshold:.2f}x): {said}; {spread}"
    if overall == DOES_NOT_HOLD:
        return f"does not hold on any of {n} workloads (80% range < {threshold:.2f}x): {said}; {spread}"
    if overall != CANNOT_TELL:
        return (
            f"holds on {count[HOLDS]} of {n} workloads, does not hold on {count[DOES_NOT_HOLD]} "
            f"(80% ranges against {threshold:.2f}x): {said}; {spread}"
        )
    thin = merge_thin(p for r in evaluated if r.thin_evidence for p in r.thin_evidence.split("; "))
    why = f"; thin evidence: {'; '.join(thin)}" if thin else ""
    return (
        f"cannot tell at this evidence on {count[CANNOT_TELL]} of {n} workloads (80% range straddles "
        f"{threshold:.2f}x; holds on {count[HOLDS]}, does not hold on {count[DOES_NOT_HOLD]}{why}): "
        f"{said}; {spread}; {point}"
    )


def evaluate_claim(
    text: str,
    *,
    metric: str | None = None,
    prices: Mapping[str, float] | None = None,
    powers: Mapping[str, float] | None = None,
    idle_fraction: float | None = None,
    price_kind: str = "on-demand",
    min_quality: str | None = None,
    workloads: Sequence[ClaimWorkload] = CLAIM_WORKLOADS,
    tolerance: float = DEFAULT_TOLERANCE,
    cache: PlanCache | None = None,
    workers: int | None = None,
    ray_address: str | None = None,
    store: str | Path | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    stack: str | None = None,
    finetune: Finetune | None = None,
    tokens: float | None = None,
    deadline_s: float | str | None = None,
    plan_runner: PlanRunner | None = None,
) -> ClaimResult:
    """Parse `text` and check it on catalog chips (`evaluate_ratio`, on the sweep engine
    `plan_runner` when `workers`, `ray_address` or `store` is given). `price_kind` picks the
    published price behind perf-per-dollar (on-demand, capacity-block, spot;
    `economics.PRICE_KINDS`): a chip without one of that kind is unknown, never priced at another
    kind; `min_quality` (A, B, C) excludes weaker catalog prices. A chip may be `chip@system`.
    `stack` (a `cost.stack` id or file; None = `auto`, each chip's vendor reference stack) runs the
    training workloads on both chips;
    `finetune` makes them LoRA/QLoRA runs; `tokens` and `deadline_s` make a cost claim a bill
    under a deadline (`evaluate_ratio`)."""
    claim = parse_claim(text, metric=metric)
    a, b = (
        target(
            name,
            prices=prices,
            powers=powers,
            idle_fraction=idle_fraction,
            price_kind=price_kind,
            stack=stack,
            min_quality=min_quality,
        )
        for name in (claim.chip_a, claim.chip_b)
    )
    return evaluate_ratio(
        claim,
        a,
        b,
        workloads=workloads,
        tolerance=tolerance,
        cache=cache,
        workers=workers,
        ray_address=ray_address,
        store=store,
        on_progress=on_progress,
        finetune=finetune,
        tokens=tokens,
        deadline_s=deadline_s,
        plan_runner=plan_runner,
    )
