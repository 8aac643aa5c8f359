"""Serving capacity side by side: each chip's cheapest plan for one request rate
(`serving.capacity.plan_capacity`) and its cost against a reference chip split into causes.

The cost ratio is chips x price; the chips ratio splits by sequential counterfactual re-planning
(the reference chip with the other's HBM capacity, then bandwidth, then peak FLOP/s, then the other
chip itself) into `capacity`, `bandwidth`, `compute`, `other` and `rounding` (whole replicas), a
telescoping product exact up to floating point. The derivation, the choice of order and what is
left out: docs/compare.md, "The cost split in full".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from twofold.compare.factors import dominant_factor
from twofold.compare.plans import Target
from twofold.estimate.inference_types import InferenceWorkload
from twofold.hardware.types import Chip
from twofold.serving.capacity import CapacityPlan, plan_capacity
from twofold.serving.config import ServingConfig
from twofold.workload.model import ModelConfig

__all__ = [
    "CAPACITY_CAUSES",
    "CapacityComparison",
    "CapacityRatio",
    "capacity_ratio",
    "compare_capacity",
    "counterfactual_chips",
]

CAPACITY_CAUSES: tuple[str, ...] = ("capacity", "bandwidth", "compute", "other", "rounding", "price")
COMPUTE_FIELDS: tuple[str, ...] = (
    "fp32_dense_tflops",
    "tf32_dense_tflops",
    "bf16_dense_tflops",
    "fp8_dense_tflops",
    "mxfp8_dense_tflops",
    "fp4_dense_tflops",
    "int8_dense_tops",
)
_SWAPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("capacity", ("hbm_capacity_gib",)),
    ("bandwidth", ("hbm_bandwidth_tb_s",)),
    ("compute", COMPUTE_FIELDS),
)


def counterfactual_chips(a: Chip, b: Chip) -> list[tuple[str, Chip]]:
    """[(cause, X1), (cause, X2), (cause, X3)]: B with A's attributes swapped in, one cause at a time
    and cumulatively (module docstring). Each keeps B's id, so B's calibration and system apply."""
    out = []
    x = b
    for cause, fields in _SWAPS:
        x = replace(x, **{f: getattr(a, f) for f in fields})
        out.append((cause, x))
    return out


@dataclass(frozen=True, kw_only=True, slots=True)
class CapacityRatio:
    """A chip's cost of serving the rate against the reference's, with its exact factors.

    `cost` = `chips` * `price` (None without both prices); `factors` (`CAPACITY_CAUSES`, the
    module docstring) multiply to `cost`, or to `chips` without `price`; None with `note` when a
    plan (or a counterfactual plan) has no answer. `per_replica_rate` and `replica_chips`: the
    ratios of r* and of the replica's size."""

    cost: float | None
    chips: float | None
    price: float | None
    per_replica_rate: float | None
    replica_chips: float | None
    factors: Mapping[str, float] | None = None
    dominant_cause: str | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "cost": self.cost,
            "chips": self.chips,
            "price": self.price,
            "per_replica_rate": self.per_replica_rate,
            "replica_chips": self.replica_chips,
            "factors": None if self.factors is None else dict(self.factors),
            "dominant_cause": self.dominant_cause,
            "note": self.note,
        }


def capacity_ratio(
    plan: Mapping[str, Any],
    reference: Mapping[str, Any],
    counterfactuals: Sequence[Mapping[str, Any]] | None = None,
) -> CapacityRatio:
    """The ratio of two `CapacityPlan.to_dict()` records; with the three counterfactual plans' records
    (X1, X2, X3 of the module docstring, in order) also its factors."""
    a, b = plan.get("best"), reference.get("best")
    if a is None or b is None:
        return CapacityRatio(
            cost=None, chips=None, price=None, per_replica_rate=None, replica_chips=None,
            note="no plan meets the targets",
        )  # fmt: skip
    pa, pb = plan.get("price_usd_per_chip_hour"), reference.get("price_usd_per_chip_hour")
    price = None if pa is None or pb is None else float(pa) / float(pb)
    chips = float(a["chips"]) / float(b["chips"])
    factors: dict[str, float] | None = None
    note = ""
    if counterfactuals is not None:
        chain = [reference, *counterfactuals, plan]
        missing = [i for i, p in enumerate(chain) if p.get("best") is None]
        if missing:
            swapped = ", ".join(cause for cause, _ in _SWAPS[: missing[0]])
            note = f"causes unknown: {reference['chip']} with {plan['chip']}'s {swapped} meets no target"
        else:
            cont = [float(p["best"]["chips_continuous"]) for p in chain]
            factors = {cause: cont[i + 1] / cont[i] for i, (cause, _) in enumerate(_SWAPS)}
            factors["other"] = cont[-1] / cont[-2]
            factors["rounding"] = (float(a["chips"]) / cont[-1]) / (float(b["chips"]) / cont[0])
            if price is not None:
                factors["price"] = price
    return CapacityRatio(
        cost=None if price is None else chips * price,
        chips=chips,
        price=price,
        per_replica_rate=float(a["max_rate_per_replica"]) / float(b["max_rate_per_replica"]),
        replica_chips=(float(a["chips"]) / a["replicas"]) / (float(b["chips"]) / b["replicas"]),
        factors=factors,
        dominant_cause=None if factors is None else dominant_factor(factors),
        note=note,
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class CapacityComparison:
    """Each target's plan for the rate and its ratio to the reference (keyed by target label)."""

    reference: str
    plans: tuple[CapacityPlan, ...]
    ratios: Mapping[str, CapacityRatio] = field(default_factory=dict)
    labels: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "plans": [
                p.to_dict() | {"label": label} for label, p in zip(self.labels, self.plans, strict=True)
            ],
            "ratios_to_reference": {k: r.to_dict() for k, r in self.ratios.items()},
            "causes": list(CAPACITY_CAUSES),
        }


def compare_capacity(
    model: ModelConfig,
    targets: Sequence[Target],
    workload: InferenceWorkload,
    load: ServingConfig,
    *,
    request_rate: float,
    p99_ttft_ms: float | None = None,
    p99_itl_ms: float | None = None,
    reference: str | None = None,
    max_replica_chips: Mapping[str, int] | None = None,
    causes: bool = True,
    num_requests: int = 400,
) -> CapacityComparison:
    """Plan each target for the rate (at its own `Target.price`), then split each one's cost against
    the reference (`reference`: a label, default the first) into causes (module docstring; three
    more plans per chip, skipped with `causes=False`). `max_replica_chips`: the most chips a
    replica of a chip id may take (e.g. from `--neuron-cores`)."""
    caps = dict(max_replica_chips or {})

    def plan(tgt: Target, chip: Chip) -> CapacityPlan:
        return plan_capacity(
            model, tgt.system, workload, load, request_rate=request_rate, p99_ttft_ms=p99_ttft_ms,
            p99_itl_ms=p99_itl_ms, chip=chip, price=tgt.price, num_requests=num_requests,
            max_replica_chips=caps.get(chip.id),
        )  # fmt: skip

    labels = [t.label for t in targets]
    ref_i = _reference_index(labels, targets, reference)  # a bad reference fails before any plan
    plans = [plan(t, t.chip) for t in targets]
    ref_t, ref_d = targets[ref_i], plans[ref_i].to_dict()
    ratios: dict[str, CapacityRatio] = {}
    for tgt, p in zip(targets, plans, strict=True):
        if tgt is ref_t:
            continue
        d = p.to_dict()
        chain: list[Mapping[str, Any]] | None = None
        if causes and d["best"] is not None and ref_d["best"] is not None:
            chain = [plan(ref_t, x).to_dict() for _, x in counterfactual_chips(tgt.chip, ref_t.chip)]
        ratios[tgt.label] = capacity_ratio(d, ref_d, chain)
    return CapacityComparison(reference=ref_t.label, plans=tuple(plans), ratios=ratios, labels=tuple(labels))


def _reference_index(labels: Sequence[str], targets: Sequence[Target], reference: str | None) -> int:
    from twofold.errors import InputError

    if reference is None:
        return 0
    for i, (label, t) in enumerate(zip(labels, targets, strict=True)):
        if reference in (label, t.chip.id, *t.chip.aliases):
            return i
    raise InputError("reference", reference, f"must be one of the chips compared: {', '.join(labels)}")
