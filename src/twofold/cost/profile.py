"""The calibration profile as the cost model reads it.

The type itself is hardware data (`hardware.profile.CalibrationProfile`: a measured chip carries
one, so it sits below the cost model); this module re-exports it for the cost model's callers and
adds `gemm_efficiency`, the precision fallback every cost formula uses to read it.
"""

from __future__ import annotations

from twofold.errors import InputError
from twofold.hardware.profile import CalibrationProfile

__all__ = ["CalibrationProfile", "gemm_efficiency"]

# Where a profile has no entry for an op's dtype, the efficiency of a related precision is used:
# fp16 runs on the bf16 datapath; microscaled fp8 on the fp8 one; fp8 efficiency is assumed to
# be the bf16 fraction (stated in docs/cost-model.md) unless a profile gives it.
_EFFICIENCY_FALLBACK: dict[str, tuple[str, ...]] = {
    "fp16": ("bf16",),
    "mxfp8": ("fp8", "bf16"),
    "fp8": ("bf16",),
    "fp4": ("fp8", "bf16"),
    "int8": ("fp8", "bf16"),
    "tf32": ("bf16", "fp32"),
    "fp32": ("bf16",),
}


def gemm_efficiency(profile: CalibrationProfile, dtype: str) -> float:
    """The profile's large-GEMM efficiency for `dtype`, falling back along related precisions."""
    for name in (dtype, *_EFFICIENCY_FALLBACK.get(dtype, ("bf16",))):
        if name in profile.gemm_efficiency:
            return float(profile.gemm_efficiency[name])
    raise InputError(
        "gemm_efficiency",
        dict(profile.gemm_efficiency),
        f"profile {profile.chip_id} has no entry usable for {dtype}",
    )
