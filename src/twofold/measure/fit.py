"""Fit a calibration profile (and the measured chip) from kernel timings.

The model fitted is the cost model itself (`cost.op_times_s`): every stage below adjusts a few
parameters so that the cost model's prediction for the kernels of one mechanism matches their
measured times, minimising the sum of squared log errors (relative errors, so that a 20 us kernel
counts as much as a 20 ms one). Each parameter is per chip and per mechanism, never per workload,
so the held-out training steps test the model, not a curve fitted to them.

Stages, each holding the earlier stages' results fixed:

1. Streaming (copy, add, mul, silu, norms at activation sizes): achievable bandwidth W (bytes/s)
   and the fixed per-kernel overhead o (s), from t = bytes / W + o.
2. GEMMs: the fp32 rate R_fp32 (FLOP/s) and the ramp F_half (FLOPs) from the fp32 GEMMs, by
   t = max((F + F_half) / R_p, bytes / W) + o; then, F_half held, the bf16 rate R_bf16 from the
   bf16 GEMMs. The ramp is fitted on fp32 because the timed training steps run fp32 and a CPU's
   bf16 GEMMs ramp up over another size range (AMX tiles: 64^3 at 1% of the 2048^3 rate); one
   ramp fitted on both priced the fp32 GEMMs of the steps 15-20% fast on the development machine.
   The GEMMs are timed on cold operands (`bench._cold_gemm`), as a training step runs them.
3. Attention (`scaled_dot_product_attention`, forward and forward+backward): the efficiency a
   relative to R_p, from t = max(F_useful / (R_p a), bytes / W) + o.
4. Training steps of the fit models: the per-operator overhead o again, now as a real eager step
   sees it (autograd bookkeeping, allocation, the kernels an op expands into); the stage-1 value
   is kept as `extra["kernel_overhead_s"]`.

The local chip's figures are then the measured bests: peak(p) = max(best measured GEMM FLOP/s,
R_p) and bandwidth = max(best measured streaming bytes/s, W), so every fitted efficiency
(R_p / peak, W / bandwidth) is a fraction <= 1. The large DRAM-sized copy is recorded as the
stream bandwidth but left out of stage 1: a CPU's last-level cache holds the tensors of the timed
models, so the bandwidth their kernels see is the cache's.

Optimiser: damped Gauss-Newton (Levenberg-Marquardt) on log-parameters with a forward-difference
Jacobian; a handful of parameters, so this is plain NumPy.

Left out: a separate ramp per precision (the profile has one; bf16 predictions of small GEMMs are
too fast); shape effects beyond size (skinny GEMMs; fp32 GEMMs with 256 rows ran at ~200 GFLOP/s
inside the steps against ~260 for 768 rows); cache levels for memory-bound kernels (one bandwidth
for L2-resident and L3-resident tensors); noise models (each measured time is taken as exact).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from twofold.cost.profile import CalibrationProfile
from twofold.hardware.types import Chip, Figure
from twofold.measure.bench import DeviceInfo
from twofold.measure.kernels import Kernel, kernel_ops
from twofold.units import GB, TB, TFLOPS

__all__ = ["FitResult", "Sample", "fit_profile", "predict_s"]

_STREAM_KINDS = ("copy", "add", "mul", "silu", "rmsnorm", "layernorm")
_DRAM_NUMEL = 2**25  # copies this large or larger measure DRAM, not the caches (see docstring)


@dataclass(frozen=True, kw_only=True, slots=True)
class Sample:
    """One measured kernel: seconds per call (see `run.time_plan` for the statistic)."""

    kernel: Kernel
    time_s: float


@dataclass(frozen=True, kw_only=True, slots=True)
class FitResult:
    chip: Chip  # the local chip, its fitted `calibration` attached
    profile: CalibrationProfile
    rms_log_error: Mapping[str, float]  # per stage, on the kernels it fitted
    stream_bandwidth_gb_s: float | None  # the large (DRAM) copy
    best_gemm_tflops: Mapping[str, float]


def predict_s(kernel: Kernel, chip: Chip, profile: CalibrationProfile) -> float:
    """The cost model's seconds for one run of `kernel`."""
    from twofold.cost import ops_time_s

    return ops_time_s(kernel_ops(kernel), chip, profile)


def _least_squares(fun: Callable[[np.ndarray], np.ndarray], x0: np.ndarray, iters: int = 60) -> np.ndarray:
    """Levenberg-Marquardt on a residual vector; returns the best x found."""
    x = np.asarray(x0, dtype=float)
    r = fun(x)
    cost, lam = float(r @ r), 1e-3
    for _ in range(iters):
        jac = np.empty((r.size, x.size))
        for j in range(x.size):
            step = np.zeros_like(x)
            step[j] = 1e-5
            jac[:, j] = (fun(x + step) - r) / 1e-5
        a, g = jac.T @ jac, jac.T @ r
        improved = False
        while lam < 1e10:
            dx = np.linalg.solve(a + lam * np.diag(np.diag(a) + 1e-12), -g)
            r_new = fun(x + dx)
            cost_new = float(r_new @ r_new)
            if cost_new < cost:
                improved = cost - cost_new > 1e-14 * max(cost, 1e-300)
                x, r, cost, lam = x + dx, r_new, cost_new, max(lam / 3, 1e-12)
                break
            lam *= 4
        if not improved:
            break
    return x


def _log_residuals(samples: Sequence[Sample], model: Callable[[Kernel], float]) -> np.ndarray:
    return np.array([math.log(max(model(s.kernel), 1e-30) / s.time_s) for s in samples])


def _bytes(kernel: Kernel) -> float:
    return sum((op.bytes_read + op.bytes_written) * op.count for op in kernel_ops(kernel))


def _flops(kernel: Kernel) -> float:
    return sum(op.flops * op.count for op in kernel_ops(kernel))


def fit_profile(
    samples: Sequence[Sample],
    info: DeviceInfo,
    *,
    chip_id: str = "local",
    provenance: Mapping[str, Any] | None = None,
) -> FitResult:
    """Fit the chip and its calibration profile from timed kernels (stages in the module docstring)."""
    by_kind: dict[str, list[Sample]] = {}
    for s in samples:
        if s.time_s > 0 and math.isfinite(s.time_s):
            by_kind.setdefault(s.kernel.kind, []).append(s)
    gemms = by_kind.get("gemm", [])
    precisions = sorted({s.kernel.dtype for s in gemms})
    if "fp32" not in precisions:
        raise ValueError("fit_profile needs fp32 GEMM measurements")
    stream = [
        s for k in _STREAM_KINDS for s in by_kind.get(k, []) if s.kernel.dims.get("numel", 0) < _DRAM_NUMEL
    ]
    dram = [s for s in by_kind.get("copy", []) if s.kernel.dims["numel"] >= _DRAM_NUMEL]
    best = {p: max(_flops(s.kernel) / s.time_s for s in gemms if s.kernel.dtype == p) for p in precisions}
    best_bw = max(_bytes(s.kernel) / s.time_s for s in stream) if stream else None

    # During the fit the chip's peaks and bandwidth ARE the fitted rates (efficiencies 1).
    base_chip = Chip(
        id=chip_id,
        name=info.name,
        vendor=info.vendor,
        family="cpu" if info.kind == "cpu" else "nvidia-gpu" if info.vendor == "nvidia" else info.kind,
        architecture="cpu" if info.kind != "cuda" else "gpu",
        hbm_capacity_gib=info.memory_gib if math.isfinite(info.memory_gib) else 0.0,
        hbm_bandwidth_tb_s=(best_bw or 1e10) / TB,
        compute_units=info.compute_units,
        fp32_dense_tflops=best["fp32"] / TFLOPS,
        bf16_dense_tflops=best["bf16"] / TFLOPS if "bf16" in best else None,
    )
    # GPU tile quantisation is part of the cost model for GPUs; the fit keeps it (tiles as default).
    state: dict[str, Any] = {
        "chip": base_chip,
        "profile": CalibrationProfile(
            chip_id=chip_id,
            gemm_efficiency={p: 1.0 for p in precisions},
            memory_efficiency=1.0,
            attention_efficiency=1.0,
            op_overhead_s=1e-6,
        ),
    }
    errors: dict[str, float] = {}

    def run_stage(
        name: str, group: Sequence[Sample], x0: Sequence[float], apply: Callable[..., None]
    ) -> None:
        if not group:
            return
        saved = dict(state)

        def residuals(x: np.ndarray) -> np.ndarray:
            apply(*(float(v) for v in np.exp(x)))
            out = _log_residuals(group, lambda k: predict_s(k, state["chip"], state["profile"]))
            state.update(saved)
            return out

        x = _least_squares(residuals, np.log(np.asarray(x0, dtype=float)))
        # A parameter the data cannot see (an overhead far below every kernel time) runs off
        # towards zero in log space; below a picosecond it is zero.
        apply(*(float(v) if v > 1e-12 else 0.0 for v in np.exp(x)))
        errors[name] = float(np.sqrt(np.mean(_log_residuals(group, lambda k: predict_s(k, **state)) ** 2)))

    def set_stream(bandwidth: float, overhead: float) -> None:
        state["chip"] = replace(state["chip"], hbm_bandwidth_tb_s=bandwidth / TB)
        state["profile"] = replace(state["profile"], op_overhead_s=overhead)

    run_stage("stream", stream, [best_bw or 1e10, 1e-6], set_stream)

    def set_fp32_gemm(rate: float, half_flops: float) -> None:
        state["chip"] = replace(state["chip"], fp32_dense_tflops=rate / TFLOPS)
        state["profile"] = replace(state["profile"], gemm_half_flops=half_flops)

    # The ramp is fitted on fp32 alone: the timed training steps run fp32, and a CPU's bf16
    # GEMMs (AMX tiles, or emulation) ramp up over a very different size range; one shared ramp
    # fitted on both precisions fitted neither (rms log error 0.46 on the development machine).
    fp32_gemms = [s for s in gemms if s.kernel.dtype == "fp32"]
    run_stage("gemm", fp32_gemms, [best["fp32"], 1e6], set_fp32_gemm)

    def set_bf16_gemm(rate: float) -> None:
        state["chip"] = replace(state["chip"], bf16_dense_tflops=rate / TFLOPS)

    if "bf16" in precisions:
        bf16_gemms = [s for s in gemms if s.kernel.dtype == "bf16"]
        run_stage("gemm_bf16", bf16_gemms, [best["bf16"]], set_bf16_gemm)

    def set_attention(efficiency: float) -> None:
        state["profile"] = replace(state["profile"], attention_efficiency=min(efficiency, 1.0))

    run_stage("attention", by_kind.get("sdpa", []), [0.5], set_attention)
    kernel_overhead_s = float(state["profile"].op_overhead_s)

    def set_overhead(overhead: float) -> None:
        state["profile"] = replace(state["profile"], op_overhead_s=overhead)

    steps = [s for s in by_kind.get("train_step", []) if s.kernel.role == "fit"]
    run_stage("train_step", steps, [max(kernel_overhead_s, 1e-6)], set_overhead)

    return _finalise(
        state["chip"], state["profile"], best, best_bw, dram, errors, kernel_overhead_s, provenance
    )


def _finalise(
    fitted_chip: Chip,
    fitted: CalibrationProfile,
    best: Mapping[str, float],
    best_bw: float | None,
    dram: Sequence[Sample],
    errors: Mapping[str, float],
    kernel_overhead_s: float,
    provenance: Mapping[str, Any] | None,
) -> FitResult:
    """Renormalise: peaks and bandwidth are the measured bests, efficiencies the fractions <= 1."""
    rates = {"fp32": fitted_chip.peak_tflops("fp32") * TFLOPS}
    if fitted_chip.bf16_dense_tflops is not None:
        rates["bf16"] = fitted_chip.bf16_dense_tflops * TFLOPS
    peaks = {p: max(best[p], rates[p]) for p in rates}
    bandwidth = max(best_bw or 0.0, fitted_chip.hbm_bandwidth_bytes_per_s)
    stream_bw = max((_bytes(s.kernel) / s.time_s for s in dram), default=None)
    attention = min(float(fitted.attention_efficiency), 1.0)
    prov = {str(k): str(v) for k, v in (provenance or {}).items()}
    if attention < fitted.attention_efficiency:
        prov["attention_note"] = f"fitted attention efficiency {fitted.attention_efficiency:.3f} capped at 1"
    profile = replace(
        fitted,
        gemm_efficiency={p: rates[p] / peaks[p] for p in rates},
        memory_efficiency=fitted_chip.hbm_bandwidth_bytes_per_s / bandwidth,
        attention_efficiency=attention,
        extra={**fitted.extra, "kernel_overhead_s": kernel_overhead_s},
        provenance=prov,
    )
    note = "measured by `twofold measure`: best of the run (see provenance)"
    chip = replace(
        fitted_chip,
        fp32_dense_tflops=peaks["fp32"] / TFLOPS,
        bf16_dense_tflops=peaks["bf16"] / TFLOPS if "bf16" in peaks else None,
        hbm_bandwidth_tb_s=bandwidth / TB,
        figures={
            "fp32_dense_tflops": Figure(value=peaks["fp32"] / TFLOPS, note=note),
            "hbm_bandwidth_tb_s": Figure(value=bandwidth / 1e12, note=note),
        },
        calibration=profile,
    )
    return FitResult(
        chip=chip,
        profile=profile,
        rms_log_error=dict(errors),
        stream_bandwidth_gb_s=stream_bw / GB if stream_bw else None,
        best_gemm_tflops={p: v / 1e12 for p, v in best.items()},
    )
