"""The result of one training-step estimate: a frozen object with a field per reported number."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from twofold.estimate._result_fields import fit_note, gib_terms, identity_dict, seconds_terms, with_unit
from twofold.estimate.uncertainty import Uncertainty, uncertainty_for
from twofold.hardware.scale import check_scale, scale_notes
from twofold.hardware.types import Chip, System
from twofold.parallel.layout import Layout, TrainingWorkload
from twofold.workload.model import ModelConfig

__all__ = ["BREAKDOWN_TERMS", "HIDDEN_TERMS", "MEMORY_TERMS", "TrainingEstimate"]

# Terms of the step time, in the order they are summed (see estimate.training).
BREAKDOWN_TERMS: tuple[str, ...] = (
    "compute_forward",
    "compute_backward",
    "compute_recompute",
    "tp",
    "cp",
    "ep",
    "pp",
    "dp",
    "fsdp",
    "bubble",
    "optimizer",
    "other",
)
# Communication overlapped with compute (not part of the step time).
HIDDEN_TERMS: tuple[str, ...] = ("cp", "pp", "dp", "fsdp")
MEMORY_TERMS: tuple[str, ...] = ("weights", "gradients", "optimizer_states", "activations", "workspace")


@dataclass(frozen=True, kw_only=True)
class TrainingEstimate:
    """One training step of `model` with `layout` on `chips` chips of `system`.

    `breakdown` (seconds) sums to `step_time_s`; `hidden_comm` (seconds) is communication that
    overlaps with compute; `memory_gib` is per chip on the most loaded pipeline stage and sums to
    `memory_per_chip_gib`. `uncertainty`: 80% intervals of the throughput, step time and MFU from
    the held-out error of the shipped rows, and the evidence behind them (`estimate.uncertainty`);
    None for an estimate built without one (an imported model).
    """

    model: str
    chip: str
    system: str
    chips: int
    layout: Layout
    workload: TrainingWorkload
    step_time_s: float
    tokens_per_s_per_chip: float
    mfu: float
    model_flops_per_step: float
    microbatches: int
    bubble_fraction: float
    memory_per_chip_gib: float
    hbm_capacity_gib: float
    fits: bool
    breakdown: Mapping[str, float] = field(default_factory=dict)
    hidden_comm: Mapping[str, float] = field(default_factory=dict)
    memory_gib: Mapping[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    uncertainty: Uncertainty | None = None
    # Stack, calibration and factors behind the numbers (`estimate.provenance`).
    provenance: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(
        cls,
        row: Mapping[str, np.generic | float],
        *,
        model: ModelConfig,
        system: System,
        chip: Chip,
        layout: Layout,
        workload: TrainingWorkload,
        stack: str = "auto",
        provenance: Mapping[str, Any] | None = None,
    ) -> TrainingEstimate:
        """Build from one row of `evaluate_layouts`' output; `stack` (the software stack id, "auto"
        when not known) picks the evidence of the uncertainty."""
        check_scale(system, layout.chips)
        mem = float(row["memory_per_chip_gib"])
        notes: list[str] = list(scale_notes(system, layout.chips))
        if not bool(row["fits"]):
            notes.append(fit_note(mem, chip))
        if system.max_chips is not None and layout.chips > system.max_chips:
            notes.append(
                f"{layout.chips} chips exceed the largest documented {system.id} deployment "
                f"({system.max_chips})"
            )
        return cls(
            model=model.name,
            chip=chip.id,
            system=system.id,
            chips=layout.chips,
            layout=layout,
            workload=workload,
            step_time_s=float(row["step_time_s"]),
            tokens_per_s_per_chip=float(row["tokens_per_s_per_chip"]),
            mfu=float(row["mfu"]),
            model_flops_per_step=float(row["model_flops_per_step"]),
            microbatches=int(round(float(row["microbatches"]))),
            bubble_fraction=float(row["bubble_fraction"]),
            memory_per_chip_gib=mem,
            hbm_capacity_gib=float(chip.hbm_capacity_gib),
            fits=bool(row["fits"]),
            breakdown=seconds_terms(row, "breakdown_", BREAKDOWN_TERMS),
            hidden_comm=seconds_terms(row, "hidden_", HIDDEN_TERMS),
            memory_gib=gib_terms(row, MEMORY_TERMS),
            notes=tuple(notes),
            provenance=dict(provenance or {}),
            uncertainty=uncertainty_for(
                chip.id,
                None,
                stack,
                {
                    "tokens_per_s_per_chip": float(row["tokens_per_s_per_chip"]),
                    "step_time_s": float(row["step_time_s"]),
                    "mfu": float(row["mfu"]),
                },
            ),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (units in the key names)."""
        return {
            **identity_dict(self),
            "step_time_s": self.step_time_s,
            "tokens_per_s_per_chip": self.tokens_per_s_per_chip,
            "mfu": self.mfu,
            "model_flops_per_step": self.model_flops_per_step,
            "microbatches": self.microbatches,
            "bubble_fraction": self.bubble_fraction,
            "memory_per_chip_gib": self.memory_per_chip_gib,
            "hbm_capacity_gib": self.hbm_capacity_gib,
            "fits": self.fits,
            "breakdown": with_unit(self.breakdown, "s"),
            "hidden_comm": with_unit(self.hidden_comm, "s"),
            "memory": with_unit(self.memory_gib, "gib"),
            "notes": list(self.notes),
            "uncertainty": None if self.uncertainty is None else self.uncertainty.to_dict(),
            "provenance": dict(self.provenance),
        }
