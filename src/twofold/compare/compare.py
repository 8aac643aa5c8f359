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
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from twofold.compare.factors import ChipTerms, chip_terms, dominant_factor, ratio_factors
from twofold.compare.plans import ChipPlan, PlanCache, Target, plan_chip, target
from twofold.compare.ranges import chip_uncertainty, ratio_range, siblings, stack_id, thin_evidence
from twofold.economics.power import busy_fraction, co2_kg, energy_kwh, energy_per_token_j
from twofold.economics.prices import cost_usd, tokens_per_usd, usd_per_million_tokens
from twofold.errors import InputError, NoAnswer
from twofold.estimate.step import StepTerms
from twofold.estimate.uncertainty import Uncertainty
from twofold.hardware.scale import scale_notes
from twofold.parallel.layout import Layout, TrainingWorkload
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

MODES: tuple[str, ...] = ("chips", "same-cost", "same-power")
RATIO_METRICS: tuple[str, ...] = (
    "throughput_per_chip",
    "perf_per_dollar",
    "perf_per_watt",
    "system_throughput",
)
DEFAULT_CHIPS = 64
# 4M tokens per step: Llama 2's pretraining batch (Touvron et al. 2023, "Llama 2", section 2.2).
DEFAULT_WORKLOAD = TrainingWorkload(global_batch=1024, seq_len=4096, precision="bf16")


def throughput_unit(model: ModelConfig | ImportedModel) -> str:
    """ "samples" for an imported model without a token input, else "tokens"."""
    return "tokens" if model.counts_tokens else "samples"


def metric_names(unit: str) -> dict[str, str]:
    """Metric keys for a throughput unit ("tokens" or "samples")."""
    one = unit[:-1]
    return {
        "thr": f"{unit}_per_s_per_chip",
        "system": f"system_{unit}_per_s",
        "usd": f"usd_per_million_{unit}",
        "energy": f"energy_per_{one}_j",
        "per_watt": f"perf_per_watt_{unit}_per_j",
        "per_dollar": f"perf_per_dollar_{unit}_per_usd",
    }


@dataclass(frozen=True, kw_only=True)
class CompareRow:
    """One chip's best plan and what it costs; ratios and factors against the reference chip."""

    chip: str
    system: str
    chips: int
    layout: Layout | None
    metrics: Mapping[str, float | None]
    breakdown_s: Mapping[str, float]
    price: Mapping[str, object]
    power: Mapping[str, object]
    terms: ChipTerms | None
    ratio_to_reference: Mapping[str, float | None] = field(default_factory=dict)
    factors: Mapping[str, Mapping[str, float] | None] = field(default_factory=dict)
    dominant_cause: Mapping[str, str | None] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    uncertainty: Uncertainty | None = None  # of this row's figures; None without a fitting layout
    # 80% range of each ratio to the reference (`compare.ranges`), None where the ratio is unknown.
    ratio_range: Mapping[str, tuple[float, float] | None] = field(default_factory=dict)
    thin_evidence: str = ""  # "trn2: inherited from AWS Trainium" for this chip or the reference
    stack: str = "auto"  # the software stack the chip's plan was priced with (`cost.stack`)
    stack_chosen_by: str = "auto"  # "auto" (the vendor's reference stack) or "--stack"
    # With a deadline: the chip's cheapest option that meets it (`search.deadline`); None without.
    deadline: TargetOutcome | None = None

    def to_dict(self) -> dict[str, Any]:
        by_deadline = {} if self.deadline is None else {"deadline": self.deadline.to_dict()}
        return {
            "chip": self.chip,
            "system": self.system,
            "stack": self.stack,
            "stack_chosen_by": self.stack_chosen_by,
            "chips": self.chips,
            "layout": None if self.layout is None else asdict(self.layout),
            **dict(self.metrics),
            "breakdown": {f"{k}_s": v for k, v in self.breakdown_s.items()},
            "price": dict(self.price),
            "power": dict(self.power),
            "chip_terms": None if self.terms is None else self.terms.to_dict(),
            "ratio_to_reference": dict(self.ratio_to_reference),
            "factors": {k: (None if v is None else dict(v)) for k, v in self.factors.items()},
            "dominant_cause": dict(self.dominant_cause),
            "notes": list(self.notes),
            "uncertainty": None if self.uncertainty is None else self.uncertainty.to_dict(),
            "ratio_range": {k: (None if v is None else list(v)) for k, v in self.ratio_range.items()},
            "thin_evidence": self.thin_evidence,
            **by_deadline,
        }


@dataclass(frozen=True, kw_only=True)
class CompareResult:
    """Rows in the order of the chips given; `reference` is the chip every ratio divides by.

    `unit` is "tokens", or "samples" for an imported model without tokens; the budget to train is
    `tokens` or `samples` accordingly (the other is None; `samples` None: no budget given).
    """

    model: str
    workload: TrainingWorkload
    mode: str
    chips: int
    reference: str
    tokens: float | None
    grid_gco2_per_kwh: float | None
    rows: tuple[CompareRow, ...]
    notes: tuple[str, ...] = ()
    unit: str = "tokens"
    samples: float | None = None
    price_kind: str = "on-demand"
    deadline_s: float | None = None  # the deadline of each row's `deadline` option; None: none asked

    def row(self, chip: str) -> CompareRow:
        for r in self.rows:
            if r.chip == chip:
                return r
        raise KeyError(chip)

    def to_dict(self) -> dict[str, Any]:
        rows = [r.to_dict() for r in self.rows]
        workload = self.workload.to_dict()
        if self.unit == "samples":
            workload["seq_len"] = None  # as `ImportedTrainingEstimate`: no tokens
            for r in rows:
                if r["chip_terms"] is not None:
                    r["chip_terms"]["flops_per_sample"] = r["chip_terms"].pop("flops_per_token")
        return {
            "model": self.model,
            "workload": workload,
            "mode": self.mode,
            "chips": self.chips,
            "reference": self.reference,
            "unit": self.unit,
            "tokens": self.tokens,
            "samples": self.samples,
            "grid_gco2_per_kwh": self.grid_gco2_per_kwh,
            "price_kind": self.price_kind,
            **({} if self.deadline_s is None else {"deadline_s": self.deadline_s}),
            "rows": rows,
            "notes": list(self.notes),
        }


def _candidate_counts(tgt: Target, budget_chips: float) -> list[int]:
    """Chip counts to try for a budget worth `budget_chips` chips: whole nodes first, then
    node_chips * 2^k (counts with odd factors often admit no layout), never above max_chips."""
    n_max = math.floor(budget_chips + 1e-9)
    if tgt.system.max_chips is not None:
        n_max = min(n_max, tgt.system.max_chips)
    node = max(tgt.system.node_chips, 1)
    if n_max < 1:
        return []
    if n_max < node:
        return [1 << (n_max.bit_length() - 1)]
    power = node
    while power * 2 <= n_max:
        power *= 2
    return list(dict.fromkeys([n_max // node * node, power]))


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


def _metrics(
    plan: ChipPlan, tgt: Target, budget: float | None, grid: float | None, unit: str
) -> dict[str, float | None]:
    """Per-row figures; `budget` tokens (or samples, `unit`) to train, None: unknown."""
    m = plan.step
    assert m is not None  # programmer invariant: only called for plans with a fitting layout
    k = metric_names(unit)
    thr = plan.per_chip_per_s()
    system_thr = thr * plan.chips
    seconds = None if budget is None else budget / system_thr
    u = busy_fraction(m.breakdown_s, m.step_time_s)
    power = tgt.power.power_w(u)
    kwh = None if seconds is None else energy_kwh(power, plan.chips, seconds)
    return {
        "step_time_s": m.step_time_s,
        **({"tokens_per_s_per_chip": None} if unit != "tokens" else {}),
        k["thr"]: thr,
        k["system"]: system_thr,
        "mfu": m.mfu,
        "memory_per_chip_gib": m.memory_per_chip_gib,
        "time_to_train_s": seconds,
        "time_to_train_days": None if seconds is None else seconds / 86400.0,
        "price_usd_per_chip_hour": tgt.price.usd_per_chip_hour,
        k["usd"]: usd_per_million_tokens(tgt.price, thr),
        "cost_usd": None if seconds is None else cost_usd(tgt.price, plan.chips, seconds),
        "utilisation": u,
        "power_w_per_chip": power,
        k["energy"]: energy_per_token_j(power, thr),
        "energy_kwh": kwh,
        "co2_kg": co2_kg(kwh, grid),
        k["per_watt"]: None if power is None else thr / power,
        k["per_dollar"]: tokens_per_usd(tgt.price, thr),
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def _ratios(
    row: _RawRow, ref: _RawRow, mode: str
) -> tuple[dict[str, float | None], dict[str, dict[str, float] | None]]:
    """Totals and factors of every ratio metric for one row against the reference row."""
    ma, mb = row.metrics, ref.metrics
    ta, tb = row.terms, ref.terms
    k = metric_names(row.unit)
    totals: dict[str, float | None] = dict.fromkeys(RATIO_METRICS)
    factors: dict[str, dict[str, float] | None] = dict.fromkeys(RATIO_METRICS)
    if ta is None or tb is None or ma is None or mb is None or row.step is None or ref.step is None:
        return totals, factors
    # Per-chip throughput in the row's unit (samples: the same number, `ChipPlan.per_chip_per_s`).
    thr_a, thr_b = row.step.tokens_per_s_per_chip, ref.step.tokens_per_s_per_chip
    base = ratio_factors(ta, tb)
    totals["throughput_per_chip"] = thr_a / thr_b
    factors["throughput_per_chip"] = base
    pa, pb = row.target.price.usd_per_chip_hour, ref.target.price.usd_per_chip_hour
    totals["perf_per_dollar"] = _ratio(ma[k["per_dollar"]], mb[k["per_dollar"]])
    if totals["perf_per_dollar"] is not None:
        assert pa is not None and pb is not None  # programmer invariant: perf/$ needs both prices
        factors["perf_per_dollar"] = base | {"price": pb / pa}
    wa, wb = ma["power_w_per_chip"], mb["power_w_per_chip"]
    totals["perf_per_watt"] = _ratio(ma[k["per_watt"]], mb[k["per_watt"]])
    if totals["perf_per_watt"] is not None:
        tdp_a, tdp_b = row.target.power.tdp_w, ref.target.power.tdp_w
        # programmer invariant: perf/W needs both chips' power, hence their TDPs
        assert wa is not None and wb is not None and tdp_a is not None and tdp_b is not None
        factors["perf_per_watt"] = base | {"tdp": tdp_b / tdp_a, "power_draw": (wb / tdp_b) / (wa / tdp_a)}
    na, nb = row.chips, ref.chips
    totals["system_throughput"] = (thr_a * na) / (thr_b * nb)  # the rows' system throughputs
    if mode == "chips":
        factors["system_throughput"] = base | {"chip_count": na / nb}
    elif row.budget_ratio is None:
        totals["system_throughput"] = None  # planned at the reference's count: no budget to compare at
    else:
        budget = row.budget_ratio
        factors["system_throughput"] = base | {"budget": budget, "rounding": (na / nb) / budget}
    return totals, factors


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
    if samples is not None and (not math.isfinite(samples) or samples <= 0):
        raise InputError("samples", samples, "must be a positive number of samples")
    if not targets:
        raise InputError("on", "", "name at least one chip")
    labels = [t.label for t in targets]
    if len(set(labels)) != len(labels):
        raise InputError("on", ",".join(labels), "names a chip twice")
    if mode not in MODES:
        raise InputError("mode", mode, f"must be one of {', '.join(MODES)}")
    if isinstance(chips, bool) or not isinstance(chips, int) or chips < 1:
        raise InputError("chips", chips, "must be a positive integer")
    if tokens is not None and (not math.isfinite(tokens) or tokens <= 0):
        raise InputError("tokens", tokens, "must be a positive number of tokens")
    if grid_gco2_per_kwh is not None and (not math.isfinite(grid_gco2_per_kwh) or grid_gco2_per_kwh < 0):
        raise InputError("grid_gco2_per_kwh", grid_gco2_per_kwh, "must be a non-negative number")
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
    sure = {t.label: _uncertainty(t, raw[t.label].step, unit) for t in targets}
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


def _check_deadline(model: ModelConfig | ImportedModel, deadline_s: float, tokens: float | None) -> float:
    """A deadline needs a token budget given (not the 20 x params default) and a catalog model."""
    from twofold.search.deadline import parse_deadline

    seconds = parse_deadline(deadline_s)
    if isinstance(model, ImportedModel):
        raise InputError("deadline", deadline_s, "applies to catalog models and config.json files")
    if tokens is None:
        raise InputError("tokens", None, "a deadline needs a token budget: --tokens N")
    return seconds


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


def _uncertainty(tgt: Target, step: StepTerms | None, unit: str) -> Uncertainty | None:
    """The intervals of a row's throughput, step time and MFU (None without a fitting layout).
    The throughput is named in the row's unit; for samples it is the same number (`ChipPlan`)."""
    if step is None:
        return None
    thr = metric_names(unit)["thr"]
    figures = {thr: step.tokens_per_s_per_chip, "step_time_s": step.step_time_s, "mfu": step.mfu}
    return chip_uncertainty(tgt, figures)


def _ranges(
    totals: Mapping[str, float | None],
    label: str,
    ref_label: str,
    sure: Mapping[str, Uncertainty | None],
    shared: bool = False,
) -> tuple[dict[str, tuple[float, float] | None], str]:
    """The 80% range of every known ratio of `label` to the reference, and whose evidence is thin."""
    mine, ref = sure[label], sure[ref_label]
    if mine is None or ref is None:
        return dict.fromkeys(totals), ""
    if label == ref_label:  # a chip against itself: exactly 1, whatever the error
        return {k: (None if v is None else (v, v)) for k, v in totals.items()}, thin_evidence({label: mine})
    ranges = {
        k: (None if v is None else ratio_range(v, mine, ref, siblings=shared)) for k, v in totals.items()
    }
    return ranges, thin_evidence({label: mine, ref_label: ref})


def _price_kind(targets: Sequence[Target]) -> str:
    """The price kind of the comparison; targets built with different kinds list them all."""
    return ",".join(dict.fromkeys(t.price.kind for t in targets))


def _resolve_reference(reference: str, targets: Sequence[Target]) -> str:
    labels = [t.label for t in targets]
    if reference in labels:
        return reference
    from twofold.hardware.catalog import get_chip

    chip_id = get_chip(reference).id
    if chip_id not in labels:
        raise InputError("reference", reference, f"must be one of the compared chips: {', '.join(labels)}")
    return chip_id


def _budget_name(mode: str) -> str:
    return "price" if mode == "same-cost" else "TDP"


def _budget_of(mode: str, ref: Target) -> str | None:
    if mode == "chips":
        return None
    value = ref.price.usd_per_chip_hour if mode == "same-cost" else ref.power.tdp_w
    if value is None:
        flag = "--price" if mode == "same-cost" else "--power"
        name = f"{ref.price.kind} price" if mode == "same-cost" else _budget_name(mode)
        raise InputError(
            "reference",
            ref.label,
            f"{name} unknown, so {mode} has no budget; pass {flag} {ref.label}=...",
        )
    return mode


def _budget_ratio(mode: str | None, ref: Target, tgt: Target) -> float | None:
    """Budget units of the reference per chip of `tgt`: price_ref/price_X or TDP_ref/TDP_X."""
    if mode == "same-cost":
        a, b = tgt.price.usd_per_chip_hour, ref.price.usd_per_chip_hour
    else:
        a, b = tgt.power.tdp_w, ref.power.tdp_w
    return None if a is None or b is None else b / a


@dataclass(kw_only=True)
class _RawRow:
    """One chip's plan and figures before the ratios to the reference (`compare_targets`).
    `step` is the estimator's terms of the best layout; `metrics` the row's figures
    (`_metrics`); both None without a fitting layout."""

    target: Target
    chips: int
    unit: str
    notes: list[str]
    budget_ratio: float | None
    layout: Layout | None = None
    step: StepTerms | None = None
    metrics: dict[str, float | None] | None = None
    terms: ChipTerms | None = None
    breakdown: dict[str, float] = field(default_factory=dict)


def _raw_row(
    model: ModelConfig | ImportedModel,
    tgt: Target,
    plan: ChipPlan | None,
    workload: TrainingWorkload,
    budget: float | None,
    grid: float | None,
    notes: list[str],
    budget_ratio: float | None,
    unit: str,
) -> _RawRow:
    row = _RawRow(
        target=tgt,
        chips=0 if plan is None else plan.chips,
        unit=unit,
        notes=notes,
        budget_ratio=budget_ratio,
    )
    if plan is None:
        return row
    notes.extend(scale_notes(tgt.system, plan.chips))
    if plan.layout is None or plan.step is None:
        notes.extend(plan.explanation or ("no valid layout",))
        return row
    row.layout = plan.layout
    row.step = plan.step
    row.metrics = _metrics(plan, tgt, budget, grid, unit)
    row.breakdown = plan.step.breakdown_s
    assert plan.unconstrained_layout is not None and plan.unconstrained_step is not None
    row.terms = chip_terms(
        model,
        tgt.chip,
        workload,
        chips=plan.chips,
        step=plan.step,
        unconstrained_layout=plan.unconstrained_layout,
        unconstrained_step=plan.unconstrained_step,
        stack=tgt.stack,
    )
    if tgt.price.usd_per_chip_hour is None:
        kind = tgt.price.kind
        instead = "" if kind == "on-demand" else " (no other kind of price is used in its place)"
        graded = "--min-quality" in tgt.price.note
        why = (
            tgt.price.note.removeprefix(f"{tgt.system.id}: ")
            if graded
            else f"no published {kind} price for {tgt.system.id}{instead}"
        )
        notes.append(f"price unknown: {why}; pass --price {tgt.chip.id}=USD")
    if tgt.power.tdp_w is None:
        notes.append(f"power unknown: no published TDP for {tgt.chip.id}; pass --power {tgt.chip.id}=W")
    return row


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
