"""`compare`'s figures for one chip and its ratios to the reference: the per-row metrics (throughput,
MFU, time, cost, power, energy, CO2, perf/W, perf/$, named by the throughput unit), the chip terms
that factor each ratio (`compare.factors`), and the ratios' 80% ranges (`compare.ranges`).
Orchestration is `compare.compare`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from twofold.compare.factors import ChipTerms, chip_terms, ratio_factors
from twofold.compare.plans import ChipPlan, Target
from twofold.compare.ranges import chip_uncertainty, ratio_range, thin_evidence
from twofold.economics.power import busy_fraction, co2_kg, energy_kwh, energy_per_token_j
from twofold.economics.prices import cost_usd, tokens_per_usd, usd_per_million_tokens
from twofold.estimate.step import StepTerms
from twofold.estimate.uncertainty import Uncertainty
from twofold.hardware.scale import scale_notes
from twofold.parallel.layout import Layout, TrainingWorkload
from twofold.workload.imported import ImportedModel
from twofold.workload.model import ModelConfig

RATIO_METRICS: tuple[str, ...] = (
    "throughput_per_chip",
    "perf_per_dollar",
    "perf_per_watt",
    "system_throughput",
)


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


def _uncertainty(
    tgt: Target, step: StepTerms | None, unit: str, seq_len: int | None = None
) -> Uncertainty | None:
    """The intervals of a row's throughput, step time and MFU (None without a fitting layout).
    The throughput is named in the row's unit; for samples it is the same number (`ChipPlan`).
    `seq_len`: the workload's (beyond the validated rows the evidence drops a level)."""
    if step is None:
        return None
    thr = metric_names(unit)["thr"]
    figures = {thr: step.tokens_per_s_per_chip, "step_time_s": step.step_time_s, "mfu": step.mfu}
    return chip_uncertainty(tgt, figures, seq_len=seq_len)


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


@dataclass(kw_only=True, slots=True)
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
        tgt.chip, workload, chips=plan.chips, step=plan.step, unconstrained_step=plan.unconstrained_step
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
