"""Where an estimate's numbers come from: the stack, the calibration file, the factors applied.

Every training estimate carries this block (`TrainingEstimate.provenance`, `"provenance"` in its
JSON) so that a reader can tell a measured efficiency from an assumed one: which software stack
priced the step (and whether `auto` chose it), the mechanism values of that stack on the chip's
family, the fitted factors the calibration applied and, for each, whether it was fitted on rows of
this family or stands in as a prior (`assumed`), and a shipped profile's GEMM efficiency for the
precision when the profile itself assumed it (borrowed from a chip on the same die, `cost.mamf`).
Nothing here changes a number.
"""

from __future__ import annotations

from typing import Any

from twofold.cost.calibration import TrainingCalibration, runs_eager
from twofold.hardware.types import Chip

__all__ = ["training_provenance"]


def training_provenance(chip: Chip, calibration: TrainingCalibration, precision: str) -> dict[str, Any]:
    """The provenance block of a training estimate on `chip` (module docstring)."""
    from twofold.cost.attention import kernel_basis
    from twofold.cost.defaults import shipped_profile

    stack = calibration.stack_for(chip)
    family = calibration.stack_family(chip.id)
    eager = runs_eager(chip, calibration)
    kernel = stack.attention_kernel(family)
    attention_basis = kernel_basis(kernel, family)
    gemm_basis = calibration.gemm_basis(chip.id, precision)
    own = getattr(chip, "calibration", None) is not None
    profile_basis = (
        "the chip's own measured profile"
        if own
        else ("published MAMF rows (cost/profiles)" if shipped_profile(chip.id) else "architecture default")
    )
    shipped = None if own else shipped_profile(chip.id)
    profile_note = str(shipped.provenance.get(f"gemm_efficiency.{precision}", "")) if shipped else ""
    borrowed = profile_note.removeprefix("assumed: ")
    assumed = [
        text
        for text in (
            f"profile gemm_efficiency.{precision}: {borrowed}" if profile_note.startswith("assumed") else "",
            gemm_basis if gemm_basis.startswith(("assumed", "no hardware")) else "",
            f"attention kernel {kernel}: {attention_basis}" if "assumed" in attention_basis else "",
            "profile: architecture-default efficiencies" if profile_basis == "architecture default" else "",
        )
        if text
    ]
    requested = "auto" if calibration.stack is None else stack.id
    return {
        "stack": stack.id,
        "stack_name": stack.name,
        "stack_chosen_by": "auto (the chip vendor's reference stack)" if requested == "auto" else "--stack",
        "stack_file": stack.path,
        "mechanisms": stack.describe(family),
        "hardware_family": family,
        "calibration": str(calibration.provenance.get("summary", "uncalibrated")),
        "profile": profile_basis,
        "factors": {
            "gemm_efficiency_factor": round(calibration.gemm_factor(chip.id, precision), 4),
            "gemm_efficiency_factor_basis": gemm_basis,
            "attention_kernel": kernel,
            "attention_kernel_basis": attention_basis,
            "attention_efficiency_factor": round(calibration.attention_efficiency_factor, 4),
            "op_overhead_factor": round(calibration.op_overhead_factor if eager else 1.0, 4),
            "memory_bound_efficiency_factor": round(calibration.memory_bound_efficiency_factor, 4),
            "collective_efficiency": round(calibration.collective_efficiency, 4),
            "tp_comm_overlap": round(calibration.tp_overlap_on(chip), 4),
            "ep_comm_overlap": round(calibration.ep_overlap_on(chip), 4),
            "fsdp_comm_overlap": round(calibration.fsdp_overlap_on(chip), 4),
        },
        "assumed": assumed,
    }
