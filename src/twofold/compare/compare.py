"""`compare`: each chip at its best layout on the same training workload, side by side, with the
ratio to a reference chip split into multiplicative causes (`compare.factors`).

Modes:
- `chips` (default): every chip gets the same chip count N.
- `same-cost`: the reference gets N chips; every other chip as many as the same dollars per hour
  buy, N * price_ref / price_X, rounded down to whole nodes (or, where that count admits no layout,
  to node_chips * 2^k). Needs every price (unknown prices give no sized row, never a free chip).
- `same-power`: the same, with TDP (provisioned power) in place of price.

Per row: layout, step time, tokens/s per chip (with its 80% interval and the evidence behind it,
`estimate.uncertainty`), MFU, memory per chip, time to train `tokens`
(default: the Chinchilla-optimal 20 tokens per parameter, Hoffmann et al. 2022, "Training
Compute-Optimal Large Language Models", arXiv 2203.15556; active parameters for MoE models, an
assumption since that fit is for dense models), $ per million tokens and $ to train (`economics.
prices`), power, energy per token, kWh and CO2 (`economics.power`), perf/W (tokens per joule) and
perf/$ (tokens per dollar). Every ratio to the reference carries its 80% range
(`compare.ranges`: the two chips' intervals combined in quadrature). Unknown prices and power stay
None, never zero. Prices are of one kind
(`price_kind`: on-demand, capacity-block or spot, `economics.PRICE_KINDS`); a chip without a
published price of that kind is unknown, never priced at another kind.

Imported models (`workload.imported.ImportedModel`, from `twofold.from_torch` or
`twofold.from_onnx`) are planned with data parallelism and ZeRO/FSDP only (`compare.plans`). One
with a token input counts tokens as above (default budget: 20 x its parameters). One without (a
CNN) counts samples: `unit` is "samples", every per-token metric becomes per-sample
(`samples_per_s_per_chip`, `usd_per_million_samples`, `perf_per_watt_samples_per_j`, ...), the
budget is `samples` (no default: time, cost and energy to train stay None without one) and
`tokens_per_s_per_chip` is None.

This module runs the comparison; what it is asked and its defaults are `compare.inputs`, each row's
figures and ratios `compare.metrics`, and what it returns `compare.result`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from twofold.checks import non_negative, one_of, positive, positive_int
from twofold.compare.factors import dominant_factor
from twofold.compare.inputs import (
    DEFAULT_CHIPS,
    DEFAULT_WORKLOAD,
    MODES,
    _budget_name,
    _budget_of,
    _budget_ratio,
    _candidate_counts,
    _check_deadline,
    _price_kind,
    _resolve_reference,
    throughput_unit,
)
from twofold.compare.metrics import RATIO_METRICS, _ranges, _ratios, _raw_row, _RawRow, _uncertainty
from twofold.compare.plans import ChipPlan, PlanCache, Target, plan_chip, target
from twofold.compare.ranges import siblings, stack_id
from twofold.compare.result import CompareResult, CompareRow
from twofold.errors import InputError, NoAnswer
from twofold.parallel.layout import TrainingWorkload
from twofold.search.deadline import TargetOutcome
from twofold.workload.budget import default_tokens
from twofold.workload.imported import ImportedModel
from twofold.workload.model import ModelConfig

__all__ = [
    "DEFAULT_CHIPS",
    "DEFAULT_WORKLOAD",
    "MODES",
    "RATIO_METRICS",
    "CompareResult",
    "CompareRow",
    "compare",
    "compare_targets",
    "default_tokens",
]


def _sized_plan(
    model: ModelConfig | ImportedModel,
    tgt: Target,
    budget_chips: float,
    workload: TrainingWorkload,
    cache: PlanCache,
) -> ChipPlan | None:
    plan = None
    for n in _candidate_counts(tgt, budget_chips):
        plan = plan_chip(model, tgt, n, workload, cache)
        if plan.layout is not None:
            return plan
    return plan


def compare_targets(
    model: ModelConfig | ImportedModel,
    targets: Sequence[Target],
    *,
    chips: int = DEFAULT_CHIPS,
    mode: str = "chips",
    tokens: float | None = None,
    samples: float | None = None,
    reference: str | None = None,
    workload: TrainingWorkload | None = None,
    grid_gco2_per_kwh: float | None = None,
    cache: PlanCache | None = None,
    deadline_s: float | None = None,
) -> CompareResult:
    """Compare `targets` (objects: catalog or what-if chips) on one training workload.

    `workload` defaults to `DEFAULT_WORKLOAD`; for an imported model, to the same global batch
    (sequences or samples) at the imported sequence length (1 without tokens) and precision.
    `samples`: the budget to train of an imported model without tokens (`tokens` for the others).
    `deadline_s` (with `tokens`, catalog models): each row also gets its chip's cheapest option
    that trains `tokens` by then (`search.deadline`: 1 chip, one node, node x 2^k up to `chips`,
    at the row's own price, billed in whole instances), or why there is none.
    """
    unit = throughput_unit(model)
    if workload is None:
        workload = DEFAULT_WORKLOAD
        if isinstance(model, ImportedModel):
            workload = TrainingWorkload(
                global_batch=DEFAULT_WORKLOAD.global_batch,
                seq_len=model.seq_len or 1,
                precision=model.precision,
            )
    if unit == "samples" and tokens is not None:
        raise InputError("tokens", tokens, f"{model.name} has no token input: give a budget in samples")
    if unit == "tokens" and samples is not None:
        raise InputError("samples", samples, f"{model.name} counts tokens: give a budget in tokens")
    if samples is not None:
        positive("samples", samples, "must be a positive number of samples", finite=True)
    if not targets:
        raise InputError("on", "", "name at least one chip")
    labels = [t.label for t in targets]
    if len(set(labels)) != len(labels):
        raise InputError("on", ",".join(labels), "names a chip twice")
    one_of("mode", mode, MODES)
    positive_int("chips", chips)
    if tokens is not None:
        positive("tokens", tokens, "must be a positive number of tokens", finite=True)
    if grid_gco2_per_kwh is not None:
        non_negative("grid_gco2_per_kwh", grid_gco2_per_kwh, finite=True)
    if deadline_s is not None:
        deadline_s = _check_deadline(model, deadline_s, tokens)
    ref_label = labels[0] if reference is None else _resolve_reference(reference, targets)
    ref_target = targets[labels.index(ref_label)]
    budget_of = _budget_of(mode, ref_target)
    if unit == "tokens":
        tokens = default_tokens(model) if tokens is None else float(tokens)
    budget = tokens if unit == "tokens" else None if samples is None else float(samples)
    cache = {} if cache is None else cache

    raw: dict[str, _RawRow] = {}
    for tgt in targets:
        notes: list[str] = []
        budget_ratio = None if mode == "chips" else 1.0
        plan: ChipPlan | None
        try:
            if tgt is ref_target or mode == "chips":
                plan = plan_chip(model, tgt, chips, workload, cache)
            else:
                budget_ratio = _budget_ratio(budget_of, ref_target, tgt)
                if budget_ratio is None:
                    notes.append(
                        f"cannot size at {mode}: {_budget_name(mode)} of {tgt.label} is unknown; "
                        f"planned at {chips} chips, system ratio unknown"
                    )
                    plan = plan_chip(model, tgt, chips, workload, cache)
                else:
                    plan = _sized_plan(model, tgt, chips * budget_ratio, workload, cache)
                    if plan is None:
                        notes.append(f"the {mode} budget buys no {tgt.label} chip")
        except InputError as exc:
            # A system's scale limit (`hardware.scale.check_scale`) makes this row impossible at the
            # count, not the whole comparison; the reference's own limit stays an input error.
            if tgt is ref_target or exc.field != "chips":
                raise
            plan = None
            notes.append(f"not possible at this chip count: {exc.rule}")
        raw[tgt.label] = _raw_row(
            model, tgt, plan, workload, budget, grid_gco2_per_kwh, notes, budget_ratio, unit
        )

    ref = raw[ref_label]
    if ref.metrics is None:
        raise NoAnswer(f"reference {ref_label} has no fitting layout: " + "; ".join(ref.notes))
    by_deadline = {}
    if deadline_s is not None and tokens is not None and isinstance(model, ModelConfig):
        by_deadline = _deadline_outcomes(model, targets, workload, tokens, deadline_s, chips)
    rows = []
    sure = {t.label: _uncertainty(t, raw[t.label].step, unit, workload.seq_len) for t in targets}
    by_label = {t.label: t for t in targets}
    for tgt in targets:
        r = raw[tgt.label]
        if r.metrics is not None:
            totals, factors = _ratios(r, ref, mode)
        else:
            totals, factors = dict.fromkeys(RATIO_METRICS), dict.fromkeys(RATIO_METRICS)
        ranges, thin = _ranges(totals, tgt.label, ref_label, sure, siblings(tgt, by_label[ref_label]))
        rows.append(
            CompareRow(
                chip=tgt.label,
                system=tgt.system.id,
                chips=r.chips,
                layout=r.layout,
                metrics=r.metrics or {},
                breakdown_s=r.breakdown,
                price=tgt.price.to_dict(),
                power=tgt.power.to_dict(),
                terms=r.terms,
                ratio_to_reference=totals,
                factors=factors,
                dominant_cause={k: (None if v is None else dominant_factor(v)) for k, v in factors.items()},
                notes=tuple(r.notes),
                uncertainty=sure[tgt.label],
                ratio_range=ranges,
                thin_evidence=thin,
                stack=stack_id(tgt),
                stack_chosen_by="auto" if tgt.stack in (None, "auto") else "--stack",
                deadline=by_deadline.get(tgt.label),
            )
        )
    return CompareResult(
        model=model.name,
        workload=workload,
        mode=mode,
        chips=chips,
        reference=ref_label,
        tokens=tokens,
        grid_gco2_per_kwh=grid_gco2_per_kwh,
        rows=tuple(rows),
        notes=_result_notes(targets, unit, budget),
        unit=unit,
        samples=budget if unit == "samples" else None,
        price_kind=_price_kind(targets),
        deadline_s=deadline_s,
    )


def _deadline_outcomes(
    model: ModelConfig,
    targets: Sequence[Target],
    workload: TrainingWorkload,
    tokens: float,
    deadline_s: float,
    chips: int,
) -> dict[str, TargetOutcome]:
    """Each target's cheapest option that meets the deadline, at the target's own price."""
    from twofold.search.deadline import DeadlineTarget, plan_deadline

    result = plan_deadline(
        model,
        [
            DeadlineTarget(
                label=t.label, system=t.system, chip=t.chip, stack=t.stack, options=t.options, price=t.price
            )
            for t in targets
        ],
        workload,
        tokens=tokens,
        deadline_s=deadline_s,
        max_chips=chips,
    )
    return {t.label: t for t in result.targets}


def _result_notes(targets: Sequence[Target], unit: str, budget: float | None) -> tuple[str, ...]:
    notes = []
    if budget is None:
        notes.append(
            f"no budget in {unit}: time, cost and energy to train are unknown (samples=..., --samples)"
        )
    assumed = [t.label for t in targets if t.power.idle_source == "assumed"]
    if assumed:
        fractions = sorted({round(t.power.idle_fraction or 0.0, 6) for t in targets if t.label in assumed})
        notes.append(
            f"idle power assumed {', '.join(f'{f:g}' for f in fractions)} x TDP for {', '.join(assumed)} "
            "(no published idle figure; --idle-fraction changes it)"
        )
    kinds = _price_kind(targets)
    unpriced = [t.label for t in targets if t.price.usd_per_chip_hour is None]
    notes.append(
        f"prices: {kinds}, USD per chip-hour, each with its quality grade (A vendor-derived, B "
        "reputable secondary, C single third-party value; each row's `price`: provider, region, date, "
        "source)"
        + (
            f"; unknown for {', '.join(unpriced)}: no published {kinds} price of the grade asked, and "
            "no other kind or grade is used in its place (--price CHIP=USD supplies one)"
            if unpriced
            else ""
        )
    )
    notes.append("power P(u) = idle + (TDP - idle) * u, u = compute-busy share of the step (docs/compare.md)")
    return tuple(notes)


def compare(
    model: ModelConfig | ImportedModel | str,
    on: Sequence[str],
    *,
    prices: Mapping[str, float] | None = None,
    powers: Mapping[str, float] | None = None,
    idle_fraction: float | None = None,
    price_kind: str = "on-demand",
    stack: Any = None,
    options: Any = None,
    min_quality: str | None = None,
    **kwargs: Any,
) -> CompareResult:
    """Compare catalog chips by id or alias (`compare("llama3.1-70b", ["trn2", "h100"])`); `model`
    is a catalog id, a config.json path, a `ModelConfig` or an imported model (`twofold.from_torch`,
    `twofold.from_onnx`). `price_kind` picks the published price (on-demand, capacity-block, spot);
    `prices` (USD per chip-hour by chip id) win over it; `min_quality` (A, B, C) makes a catalog price
    of a weaker grade unknown. An entry of `on` may be `chip@system`. `stack` (`cost.stack`; None =
    `auto`, each chip's vendor reference stack) runs on every chip; `options`
    (`search.EnumerateOptions`) bounds every chip's layout search. The other keyword arguments are
    those of `compare_targets`."""
    if isinstance(model, str):
        from twofold.workload.registry import get_model

        model = get_model(model)
    targets = [
        target(
            name,
            prices=prices,
            powers=powers,
            idle_fraction=idle_fraction,
            price_kind=price_kind,
            stack=stack,
            min_quality=min_quality,
        )
        for name in on
    ]
    targets = [
        t if options is None else replace(t, options=options)
        for t in targets
    ]
    return compare_targets(model, targets, **kwargs)
