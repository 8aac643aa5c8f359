"""What `compare` returns: one `CompareRow` per chip in a `CompareResult`, and their JSON."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from twofold.compare.factors import ChipTerms
from twofold.estimate.uncertainty import Uncertainty
from twofold.parallel.layout import Layout, TrainingWorkload
from twofold.search.deadline import TargetOutcome


@dataclass(frozen=True, kw_only=True, slots=True)
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


@dataclass(frozen=True, kw_only=True, slots=True)
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
            workload["seq_len"] = None  # as an imported model's `TrainingEstimate`: no tokens
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
