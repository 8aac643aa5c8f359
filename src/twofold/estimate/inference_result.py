"""The result of one serving estimate: a frozen object with a field per reported number."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from twofold.economics.prices import Price, price_for, usd_per_million_tokens
from twofold.estimate._result_fields import fit_note, gib_terms, identity_dict, seconds_terms, with_unit
from twofold.estimate.inference_types import InferenceLayout, InferenceWorkload
from twofold.estimate.uncertainty import Uncertainty, uncertainty_for
from twofold.hardware.scale import check_scale, scale_notes
from twofold.hardware.types import Chip, System
from twofold.workload.model import ModelConfig

__all__ = ["BREAKDOWN_TERMS", "MEMORY_PARTS", "InferenceEstimate"]

# Terms of TTFT and of TPOT, in the order they are summed (see estimate.inference).
BREAKDOWN_TERMS: tuple[str, ...] = (
    "compute",
    "weight_read",
    "kv_cache",
    "activation_io",
    "overhead",
    "tp_allreduce",
    "ep_alltoall",
    "pp_sendrecv",
    "pipeline_bubble",
)
MEMORY_PARTS: tuple[str, ...] = ("weights", "kv_cache", "activations", "headroom")
_NO_PRICE = "no price"


@dataclass(frozen=True, kw_only=True, slots=True)
class InferenceEstimate:
    """Serving `workload` with `layout` on chips of `system`.

    `breakdown_prefill` sums to `ttft_s` and `breakdown_decode` to `tpot_s` (seconds);
    `memory_gib` (per chip, most loaded stage) sums to `memory_per_chip_gib`. Throughputs count
    output tokens: `output_tokens_per_s` over the whole system (dp replicas), including the
    prefill time; `decode_tokens_per_s` during decode only. `kv_capacity_tokens` is per replica.
    `uncertainty`: 80% intervals of TTFT, TPOT and output tokens/s (`estimate.uncertainty`; one
    level for serving, from the serving rows' in-sample error). `usd_per_million_output_tokens` is
    at `price` (the catalog on-demand price unless `priced` gave another; None when unknown).
    """

    model: str
    chip: str
    system: str
    chips: int
    layout: InferenceLayout
    workload: InferenceWorkload
    ttft_s: float
    tpot_s: float
    e2e_latency_s: float
    decode_context_len: int
    micro_batches: int
    output_tokens_per_s: float
    output_tokens_per_s_per_chip: float
    decode_tokens_per_s: float
    memory_per_chip_gib: float
    hbm_capacity_gib: float
    fits: bool
    max_batch: int
    kv_capacity_tokens: int
    usd_per_million_output_tokens: float | None = None
    breakdown_prefill: Mapping[str, float] = field(default_factory=dict)
    breakdown_decode: Mapping[str, float] = field(default_factory=dict)
    memory_gib: Mapping[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    uncertainty: Uncertainty | None = None
    price: Price | None = None

    def priced(self, price: Price) -> InferenceEstimate:
        """The same estimate with its dollars at `price` (`economics.price_for`: a kind, a grade, or
        the user's); unknown stays unknown, never another kind's figure."""
        notes = [n for n in self.notes if not n.startswith(_NO_PRICE)]
        if price.usd_per_chip_hour is None:
            notes.append(f"{_NO_PRICE} ({price.kind}): {price.note}; cost per token unknown")
        usd = usd_per_million_tokens(price, self.output_tokens_per_s_per_chip)
        return replace(self, price=price, usd_per_million_output_tokens=usd, notes=tuple(notes))

    @classmethod
    def from_row(
        cls,
        row: Mapping[str, np.generic | float],
        *,
        model: ModelConfig,
        served: ModelConfig,
        system: System,
        chip: Chip,
        layout: InferenceLayout,
        workload: InferenceWorkload,
        max_batch: int,
        kv_capacity_tokens: int,
        stack: str = "auto",
    ) -> InferenceEstimate:
        """Build from one row of `estimate.inference.evaluate_batches`; `stack`: the serving stack
        id ("auto" when not known)."""
        check_scale(system, layout.chips)
        mem = float(row["memory_per_chip_bytes"]) / 2**30
        per_chip = float(row["output_tokens_per_s_per_chip"])
        price = price_for(system, chip)
        usd = usd_per_million_tokens(price, per_chip)
        notes: list[str] = list(scale_notes(system, layout.chips))
        if not bool(row["fits"]):
            notes.append(f"{fit_note(mem, chip)} (largest batch that fits: {max_batch})")
        if served != model:
            notes.append(
                f"padded for tp={layout.tp}: "
                f"heads {model.num_attention_heads}->{served.num_attention_heads}, "
                f"kv heads {model.num_kv_heads}->{served.num_kv_heads}, "
                f"ffn {model.intermediate_size}->{served.intermediate_size}"
            )
        if system.max_chips is not None and layout.chips > system.max_chips:
            notes.append(
                f"{layout.chips} chips exceed the largest documented {system.id} ({system.max_chips})"
            )
        if price.usd_per_chip_hour is None:
            notes.append(f"{_NO_PRICE} ({price.kind}): {price.note}; cost per token unknown")
        return cls(
            model=model.name,
            chip=chip.id,
            system=system.id,
            chips=layout.chips,
            layout=layout,
            workload=workload,
            ttft_s=float(row["ttft_s"]),
            tpot_s=float(row["tpot_s"]),
            e2e_latency_s=float(row["e2e_latency_s"]),
            decode_context_len=workload.decode_context_len,
            micro_batches=int(row["micro_batches"]),
            output_tokens_per_s=float(row["output_tokens_per_s"]),
            output_tokens_per_s_per_chip=per_chip,
            decode_tokens_per_s=float(row["decode_tokens_per_s"]),
            memory_per_chip_gib=mem,
            hbm_capacity_gib=float(chip.hbm_capacity_gib),
            fits=bool(row["fits"]),
            max_batch=int(max_batch),
            kv_capacity_tokens=int(kv_capacity_tokens),
            usd_per_million_output_tokens=usd,
            breakdown_prefill=seconds_terms(row, "prefill_", BREAKDOWN_TERMS),
            breakdown_decode=seconds_terms(row, "decode_", BREAKDOWN_TERMS),
            memory_gib=gib_terms(row, MEMORY_PARTS),
            notes=tuple(notes),
            price=price,
            uncertainty=uncertainty_for(
                chip.id,
                None,
                stack,
                {
                    "ttft_ms": float(row["ttft_s"]) * 1e3,
                    "tpot_ms": float(row["tpot_s"]) * 1e3,
                    "output_tokens_per_s": float(row["output_tokens_per_s"]),
                },
            ),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (units in the key names)."""
        return {
            **identity_dict(self),
            "ttft_s": self.ttft_s,
            "ttft_ms": self.ttft_s * 1e3,
            "tpot_s": self.tpot_s,
            "tpot_ms": self.tpot_s * 1e3,
            "e2e_latency_s": self.e2e_latency_s,
            "decode_context_len": self.decode_context_len,
            "micro_batches": self.micro_batches,
            "output_tokens_per_s": self.output_tokens_per_s,
            "output_tokens_per_s_per_chip": self.output_tokens_per_s_per_chip,
            "decode_tokens_per_s": self.decode_tokens_per_s,
            "memory_per_chip_gib": self.memory_per_chip_gib,
            "hbm_capacity_gib": self.hbm_capacity_gib,
            "fits": self.fits,
            "max_batch": self.max_batch,
            "kv_capacity_tokens": self.kv_capacity_tokens,
            "usd_per_million_output_tokens": self.usd_per_million_output_tokens,
            "price": None if self.price is None else self.price.to_dict(),
            "breakdown_prefill": with_unit(self.breakdown_prefill, "s"),
            "breakdown_decode": with_unit(self.breakdown_decode, "s"),
            "memory": with_unit(self.memory_gib, "gib"),
            "notes": list(self.notes),
            "uncertainty": None if self.uncertainty is None else self.uncertainty.to_dict(),
        }
