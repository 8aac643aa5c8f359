"""Decompose a chip's training throughput into multiplicative terms, and a ratio of two chips into
factors that multiply back to the ratio exactly.

thr = peak / F * MFU_u * memory_capacity, with MFU_u telescoped over the estimate's breakdown
(compute efficiency, memory bandwidth, op overhead, exposed communication, pipeline and
optimizer); a ratio is the product of the per-term ratios, times price, TDP and power draw, or chip
count, for the other metrics. The derivation and what it leaves out: docs/compare.md, "Why a ratio
is what it is: the factors" and "The decomposition in full".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from twofold.estimate.step import StepTerms
from twofold.hardware.types import Chip
from twofold.parallel.layout import TrainingWorkload

__all__ = ["THROUGHPUT_FACTORS", "ChipTerms", "chip_terms", "dominant_factor", "ratio_factors"]

THROUGHPUT_FACTORS: tuple[str, ...] = (
    "peak_compute",
    "compute_efficiency",
    "memory_bandwidth",
    "op_overhead",
    "exposed_communication",
    "pipeline_and_optimizer",
    "memory_capacity",
)


@dataclass(frozen=True, kw_only=True, slots=True)
class ChipTerms:
    """One chip's throughput terms; `tokens_per_s_per_chip()` is their product (module docstring).

    `peak_compute` is in FLOP/s, the others are dimensionless; `flops_per_token` is the model's.
    """

    peak_compute: float
    flops_per_token: float
    compute_efficiency: float
    memory_bandwidth: float
    op_overhead: float
    exposed_communication: float
    pipeline_and_optimizer: float
    memory_capacity: float

    def tokens_per_s_per_chip(self) -> float:
        product = 1.0 / self.flops_per_token
        for name in THROUGHPUT_FACTORS:
            product *= getattr(self, name)
        return product

    def to_dict(self) -> dict[str, float]:
        out = {name: getattr(self, name) for name in THROUGHPUT_FACTORS}
        out["peak_compute"] = self.peak_compute / 1e12
        return {("peak_compute_tflops" if k == "peak_compute" else k): v for k, v in out.items()} | {
            "flops_per_token": self.flops_per_token
        }


def chip_terms(
    chip: Chip,
    workload: TrainingWorkload,
    *,
    chips: int,
    step: StepTerms,
    unconstrained_step: StepTerms,
) -> ChipTerms:
    """The terms of `step` (the best fitting layout's estimate), built from the unconstrained
    layout's priced terms and the ratio of the two throughputs (module docstring). Every figure is
    the estimator's own: the step time, kernel time K, exposed communication X, model FLOPs and the
    roofline shares rho_c and rho_r of the kernel time (`StepTerms.kernel_compute_share`,
    `kernel_roofline_share`: priced with the rest of the step, never again here)."""
    u = unconstrained_step
    peak = chip.peak_tflops(workload.precision) * 1e12
    tokens_per_step = float(workload.global_batch) * workload.seq_len
    flops_per_token = u.model_flops_per_step / tokens_per_step
    t_ideal = u.model_flops_per_step / (chips * peak)
    kernels = u.kernel_s
    exposed = u.exposed_comm_s
    rho_c, rho_r = u.kernel_compute_share, u.kernel_roofline_share
    compute, roofline = rho_c * kernels, rho_r * kernels
    return ChipTerms(
        peak_compute=peak,
        flops_per_token=flops_per_token,
        compute_efficiency=t_ideal / compute,
        memory_bandwidth=compute / roofline,
        op_overhead=roofline / kernels,
        exposed_communication=kernels / (kernels + exposed),
        pipeline_and_optimizer=(kernels + exposed) / u.step_time_s,
        memory_capacity=step.tokens_per_s_per_chip / u.tokens_per_s_per_chip,
    )


def ratio_factors(a: ChipTerms, b: ChipTerms) -> dict[str, float]:
    """Per-term ratios a / b; their product is a.tokens_per_s_per_chip() / b.tokens_per_s_per_chip()
    because the model FLOPs per token are the same for both (same model and sequence length)."""
    return {name: getattr(a, name) / getattr(b, name) for name in THROUGHPUT_FACTORS}


def dominant_factor(factors: Mapping[str, float | None]) -> str | None:
    """The factor furthest from 1 on a log scale (the largest |log factor|): the main cause."""
    known = {k: v for k, v in factors.items() if v is not None and v > 0}
    if not known:
        return None
    return max(known, key=lambda k: abs(math.log(known[k])))
