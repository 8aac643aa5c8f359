"""Calibration profile: the per-chip parameters that turn a roofline into a prediction.

A profile says how close a chip gets to its datasheet in practice. It is data: shipped defaults
(fitted from published microbenchmarks such as the MAMF rows of the published results, or stated as
assumptions) live in YAML under `cost/profiles/`, and `twofold measure` writes a profile for the local
device. Every parameter is per chip or per mechanism, never per workload.

Parameters
- `gemm_efficiency`: achievable fraction of the dense peak for large, well-shaped GEMMs, per
  precision (the "maximum achievable matmul FLOPS" of a chip divided by its peak).
- `gemm_half_flops`: GEMM size (FLOPs) at which a GEMM reaches half of `gemm_efficiency`; models
  the ramp of small GEMMs (launch, pipeline fill, too few tiles) as eff(F) = eff_max * F / (F + F_half),
  which equals a fixed start-up of F_half / (peak * eff_max) seconds per GEMM (see `cost.gemm`).
- `memory_efficiency`: achievable fraction of HBM bandwidth for streaming kernels.
- `attention_efficiency`: achievable fraction of peak for fused attention relative to GEMMs (1.0 =
  as good as a GEMM of the same FLOPs).
- `op_overhead_s`: fixed time per operator execution (kernel launch, instruction issue, sync).
- `gemm_tiles`: GPU output-tile shapes (rows x columns) the GEMM library may pick from; the cost
  model charges each GEMM the candidate with the least padding (see `cost.gemm`).
- `attention_kernel`, `attention_family`: set by the training calibration from the software stack
  (`cost.defaults.apply_calibration`): attention is then priced from the kernel's published speed
  (`cost.attention`) times `extra["attention_kernel_factor"]`, where the kernel has a table.
- `systolic_moving_tile`: rows of the moving operand one systolic-array pass streams before the
  array drains (512 on Trainium: the NKI limit on the moving free dimension; an assumption on TPU).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["CalibrationProfile"]


@dataclass(frozen=True, kw_only=True, slots=True)
class CalibrationProfile:
    chip_id: str
    gemm_efficiency: Mapping[str, float]  # precision -> fraction of dense peak
    gemm_half_flops: float = 0.0
    memory_efficiency: float = 0.8
    attention_efficiency: float = 0.8
    op_overhead_s: float = 0.0
    gemm_tiles: tuple[tuple[int, int], ...] = ((128, 128), (128, 256), (256, 128))
    systolic_moving_tile: int = 512
    # The stack's fused-attention kernel on this chip and the family whose kernel measurements
    # apply (`cost.attention`); None = price attention with `attention_efficiency`.
    attention_kernel: str | None = None
    attention_family: str | None = None
    # Free-form provenance: how it was obtained (source rows, measurement run id, date, versions).
    provenance: Mapping[str, str] = field(default_factory=dict)
    # Further mechanism parameters a cost model may define (documented where they are read).
    extra: Mapping[str, float] = field(default_factory=dict)
