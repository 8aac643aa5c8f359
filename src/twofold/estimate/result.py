"""The result of one training-step estimate: a frozen object with a field per reported number."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from twofold.estimate._result_fields import fit_note, identity_dict, with_unit
from twofold.estimate.step import BREAKDOWN_TERMS, HIDDEN_TERMS, MEMORY_TERMS, StepTerms
from twofold.estimate.uncertainty import Uncertainty, uncertainty_for
from twofold.hardware.scale import check_scale, scale_notes
from twofold.hardware.types import Chip, System
from twofold.parallel.layout import Layout, TrainingWorkload
from twofold.workload.model import ModelConfig

if TYPE_CHECKING:  # loaded only with an imported model (start-up time)
    from twofold.workload.imported import ImportedModel

__all__ = ["BREAKDOWN_TERMS", "HIDDEN_TERMS", "MEMORY_TERMS", "TrainingEstimate"]


@dataclass(frozen=True, kw_only=True, slots=True)
class TrainingEstimate:
    """One training step of `model` with `layout` on `chips` chips of `system`.

    `breakdown` (seconds) sums to `step_time_s`; `hidden_comm` (seconds) is communication that
    overlaps with compute; `memory_gib` is per chip on the most loaded pipeline stage and sums to
    `memory_per_chip_gib`. `uncertainty`: 80% intervals of the throughput, step time and MFU from
    the held-out error of the shipped rows, and the evidence behind them (`estimate.uncertainty`);
    None for an estimate built without one, and for an imported model (the rows are catalog
    architectures').

    What only an imported model has (`estimate.imported`), None for a catalog one:
    `samples_per_s_per_chip`; `unsupported_ops`, operators the importer did not recognise (priced
    as zero-FLOP memory ops: an approximation); `fused`, whether the fusion pass was applied;
    `source`, where it was imported from. `counts_tokens` is False for a model without a token
    input, whose `tokens_per_s_per_chip` (its samples per second, at seq_len 1) is reported as null.
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
    samples_per_s_per_chip: float | None = None
    unsupported_ops: Mapping[str, int] | None = None
    fused: bool | None = None
    source: str | None = None
    counts_tokens: bool = True
    # Of the kernel time, the compute-roofline and roofline shares (`StepTerms`; compare's factors).
    kernel_compute_share: float = math.nan
    kernel_roofline_share: float = math.nan

    @classmethod
    def from_row(
        cls,
        row: StepTerms,
        *,
        model: ModelConfig | ImportedModel,
        system: System,
        chip: Chip,
        layout: Layout,
        workload: TrainingWorkload,
        stack: str = "auto",
        provenance: Mapping[str, Any] | None = None,
    ) -> TrainingEstimate:
        """Build from one row of `evaluate_layouts`' output (`StepArrays.row`); `stack` (the
        software stack id, "auto" when not known) picks the evidence of the uncertainty."""
        imported = (
            _imported_fields(row, model, layout, workload) if not isinstance(model, ModelConfig) else {}
        )
        check_scale(system, layout.chips)
        mem = row.memory_per_chip_gib
        notes: list[str] = list(scale_notes(system, layout.chips))
        if not row.fits:
            notes.append(fit_note(mem, chip))
        if system.max_chips is not None and layout.chips > system.max_chips:
            notes.append(
                f"{layout.chips} chips exceed the largest documented {system.id} deployment "
                f"({system.max_chips})"
            )
        notes.extend(imported.pop("notes", ()))
        return cls(
            model=model.name,
            chip=chip.id,
            system=system.id,
            chips=layout.chips,
            layout=layout,
            workload=workload,
            step_time_s=row.step_time_s,
            tokens_per_s_per_chip=row.tokens_per_s_per_chip,
            mfu=row.mfu,
            model_flops_per_step=row.model_flops_per_step,
            microbatches=int(round(row.microbatches)),
            bubble_fraction=row.bubble_fraction,
            memory_per_chip_gib=mem,
            hbm_capacity_gib=float(chip.hbm_capacity_gib),
            fits=row.fits,
            breakdown=MappingProxyType(row.breakdown_s),
            hidden_comm=MappingProxyType(row.hidden_s),
            memory_gib=MappingProxyType(row.memory_gib),
            notes=tuple(notes),
            provenance=dict(provenance or {}),
            kernel_compute_share=row.kernel_compute_share,
            kernel_roofline_share=row.kernel_roofline_share,
            uncertainty=None
            if imported
            else uncertainty_for(
                chip.id,
                None,
                stack,
                {
                    "tokens_per_s_per_chip": row.tokens_per_s_per_chip,
                    "step_time_s": row.step_time_s,
                    "mfu": row.mfu,
                },
                seq_len=workload.seq_len,
            ),
            **imported,
        )

    def terms(self) -> StepTerms:
        """The step's terms as the vectorised estimator gives them for this layout (memory back in
        bytes: GiB * 2**30, exact)."""
        mem = self.memory_gib
        return StepTerms(
            step_time_s=self.step_time_s,
            tokens_per_s_per_chip=self.tokens_per_s_per_chip,
            mfu=self.mfu,
            model_flops_per_step=self.model_flops_per_step,
            microbatches=float(self.microbatches),
            bubble_fraction=self.bubble_fraction,
            memory_per_chip_bytes=self.memory_per_chip_gib * 2**30,
            memory_per_chip_gib=self.memory_per_chip_gib,
            fits=self.fits,
            breakdown_compute_forward_s=self.breakdown["compute_forward"],
            breakdown_compute_backward_s=self.breakdown["compute_backward"],
            breakdown_compute_recompute_s=self.breakdown["compute_recompute"],
            breakdown_tp_s=self.breakdown["tp"],
            breakdown_cp_s=self.breakdown["cp"],
            breakdown_ep_s=self.breakdown["ep"],
            breakdown_pp_s=self.breakdown["pp"],
            breakdown_dp_s=self.breakdown["dp"],
            breakdown_fsdp_s=self.breakdown["fsdp"],
            breakdown_bubble_s=self.breakdown["bubble"],
            breakdown_optimizer_s=self.breakdown["optimizer"],
            breakdown_other_s=self.breakdown["other"],
            hidden_cp_s=self.hidden_comm["cp"],
            hidden_pp_s=self.hidden_comm["pp"],
            hidden_dp_s=self.hidden_comm["dp"],
            hidden_fsdp_s=self.hidden_comm["fsdp"],
            memory_weights_bytes=mem["weights"] * 2**30,
            memory_gradients_bytes=mem["gradients"] * 2**30,
            memory_optimizer_states_bytes=mem["optimizer_states"] * 2**30,
            memory_activations_bytes=mem["activations"] * 2**30,
            memory_workspace_bytes=mem["workspace"] * 2**30,
            kernel_compute_share=self.kernel_compute_share,
            kernel_roofline_share=self.kernel_roofline_share,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (units in the key names)."""
        d = {
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
        if self.samples_per_s_per_chip is not None:  # an imported model
            d["source"] = self.source
            d["samples_per_s_per_chip"] = self.samples_per_s_per_chip
            if not self.counts_tokens:
                d["tokens_per_s_per_chip"] = None
                d["workload"]["seq_len"] = None
            d["unsupported_ops"] = dict(sorted((self.unsupported_ops or {}).items()))
            d["fused"] = self.fused
        return d


def _imported_fields(
    row: StepTerms, model: ImportedModel, layout: Layout, workload: TrainingWorkload
) -> dict[str, Any]:
    """The fields and notes only an imported model's estimate has (class docstring)."""
    notes = []
    if model.unsupported:
        listed = ", ".join(f"{k} x{v}" for k, v in sorted(model.unsupported.items()))
        notes.append(f"unsupported operators priced as zero-FLOP memory ops: {listed}")
    if model.fuse and model.fused_ops is None:
        notes.append("no fusion available for this import: eager operators priced")
    return {
        "samples_per_s_per_chip": workload.global_batch / (row.step_time_s * layout.chips),
        "unsupported_ops": dict(model.unsupported),
        "fused": model.fused,
        "source": model.source,
        "counts_tokens": model.counts_tokens,
        "notes": tuple(notes),
    }
