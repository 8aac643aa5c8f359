"""Decompose a chip's training throughput into multiplicative terms, and a ratio of two chips into
factors that multiply back to the ratio exactly.

Per-chip throughput of the best fitting layout (tokens/s per chip), with F the model FLOPs per
token (the same for every chip: same model, same sequence length) and peak the chip's dense peak
at the training precision:

    thr = peak / F * MFU_u * memory_capacity,       memory_capacity = thr / thr_u

where `_u` marks the best layout if memory were unlimited (`compare.plans`). MFU_u telescopes over
the estimate's breakdown of that layout's step time T (terms add up to T exactly):

    T_ideal = model FLOPs per step / (chips * peak)              time at peak, no waste
    K       = compute_forward + compute_backward + compute_recompute     kernel time
    C       = rho_c * K      with rho_c = sum(count * t_compute) / sum(count * t_op)
    R       = rho_r * K      with rho_r = sum(count * max(t_compute, t_memory)) / sum(count * t_op)
    X       = exposed communication: tp + cp + ep + pp + dp + fsdp

    MFU_u = T_ideal / T
          = T_ideal / C          compute_efficiency: model FLOPs at peak over the compute roofline
                                 time (GEMM efficiency, padding to tiles/arrays, attention,
                                 recompute, pipeline-stage imbalance)
          * C / R                memory_bandwidth: share of roofline time that is compute, not
                                 waiting on HBM (memory-bound ops: norms, elementwise, small GEMMs)
          * R / K                op_overhead: fixed per-op launch/instruction overheads
          * K / (K + X)          exposed_communication
          * (K + X) / T          pipeline_and_optimizer: bubble, optimizer step, other

t_compute, t_memory and t_op = max(t_compute, t_memory) + overhead are the cost model's roofline
terms (`cost.op_time_terms`) of one micro-batch's ops for the layout (`workload.training_ops`;
for an imported model, its fused forward and backward operators, what `estimate.imported` prices);
their shares are applied to the slowest stage's kernel time K (an approximation when pipeline
stages differ in their op mix; the product stays exact because each term divides the previous).

A ratio of chip A to reference B is then the product of the per-term ratios, each term divided by
the same term of B: a telescoping product, equal to thr_A / thr_B up to rounding (the tests check
1e-9). For an imported model without tokens (a CNN), "token" reads "sample" throughout: its
workload has seq_len = 1, so F is the model FLOPs per sample and thr is samples/s per chip.
Perf per dollar multiplies by `price` = price_B / price_A; perf per watt by `tdp` =
TDP_B / TDP_A and `power_draw` = (P_B/TDP_B) / (P_A/TDP_A) (how hard each chip runs against its
rating); system throughput at the same budget by `chip_count` = N_A / N_B, itself
`budget` (price or TDP ratio) * `rounding` (whole nodes bought against the budget).

Left out: a factor is a ratio of modelled times, so it is as right as the estimator; the
decomposition's order matters (memory capacity is taken last), as in any telescoping split.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from twofold.estimate.step import StepTerms
from twofold.hardware.types import Chip
from twofold.parallel.layout import Layout, TrainingWorkload
from twofold.workload.imported import ImportedModel
from twofold.workload.model import ModelConfig

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


@dataclass(frozen=True, kw_only=True)
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


def roofline_shares(
    model: ModelConfig | ImportedModel,
    chip: Chip,
    layout: Layout,
    workload: TrainingWorkload,
    stack: Any = None,
) -> tuple[float, float]:
    """(rho_c, rho_r): compute-roofline and roofline (no overhead) time over op time, for one
    micro-batch of the layout's per-chip ops (module docstring), priced with the profile of the
    stack the chip's plan ran (`stack`: a Stack, an id or None / "auto", as the estimator takes it)."""
    from twofold.cost import op_time_terms, profile_for
    from twofold.cost.calibration import shipped_calibration
    from twofold.workload.graph import training_ops

    if isinstance(model, ImportedModel):
        fwd, bwd = model.step_ops(fused=True)
        ops = (*fwd, *bwd)
    else:
        ops = training_ops(
            model,
            micro_batch=layout.micro_batch,
            seq_len=workload.seq_len,
            precision=workload.precision,
            recompute=layout.recompute,
            tp=layout.tp,
            cp=layout.cp,
            ep=layout.ep,
            sequence_parallel=layout.sequence_parallel,
        )
    profile = profile_for(chip, calibration=shipped_calibration().with_stack(stack))
    terms = op_time_terms(ops, chip, profile)
    counts = np.array([op.count for op in ops], dtype=float)
    total = float(np.dot(terms.time_s, counts))
    compute = float(np.dot(terms.compute_s, counts))
    roofline = float(np.dot(np.maximum(terms.compute_s, terms.memory_s), counts))
    return compute / total, roofline / total


def chip_terms(
    model: ModelConfig | ImportedModel,
    chip: Chip,
    workload: TrainingWorkload,
    *,
    chips: int,
    step: StepTerms,
    unconstrained_layout: Layout,
    unconstrained_step: StepTerms,
    stack: Any = None,
) -> ChipTerms:
    """The terms of `step` (the best fitting layout's estimate), built from the unconstrained
    layout's priced terms and the ratio of the two throughputs (module docstring). The step time,
    kernel time K, exposed communication X and model FLOPs are the estimator's own figures; only
    the roofline shares rho_c and rho_r are priced here (`roofline_shares`)."""
    u = unconstrained_step
    peak = chip.peak_tflops(workload.precision) * 1e12
    tokens_per_step = float(workload.global_batch) * workload.seq_len
    flops_per_token = u.model_flops_per_step / tokens_per_step
    t_ideal = u.model_flops_per_step / (chips * peak)
    kernels = u.kernel_s
    exposed = u.exposed_comm_s
    rho_c, rho_r = roofline_shares(model, chip, unconstrained_layout, workload, stack)
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
