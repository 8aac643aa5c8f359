"""Chips and ops built directly (plain dataclasses), so the cost tests do not depend on the catalog."""

from __future__ import annotations

from twofold.cost import CalibrationProfile
from twofold.hardware.types import Chip
from twofold.workload.ops import Op

# H100 SXM datasheet figures (NVIDIA H100 Tensor Core GPU datasheet): 989 TFLOPS dense BF16,
# 1979 dense FP8, 3.35 TB/s HBM3, 132 SMs.
H100 = Chip(
    id="test-h100",
    name="H100-like test chip",
    vendor="test",
    family="nvidia-gpu",
    bf16_dense_tflops=989.0,
    fp8_dense_tflops=1979.0,
    hbm_capacity_gib=80.0,
    hbm_bandwidth_tb_s=3.35,
    architecture="gpu",
    compute_units=132,
)

# Trainium2-like: 128 x 128 TensorE arrays (NKI architecture guide), 8 NeuronCores with one each.
TRN2 = Chip(
    id="test-trn2",
    name="Trainium2-like test chip",
    vendor="test",
    family="trainium",
    bf16_dense_tflops=667.0,
    hbm_capacity_gib=96.0,
    hbm_bandwidth_tb_s=2.9,
    architecture="systolic",
    compute_units=8,
    systolic_array_dim=128,
    matrix_units=8,
)

CPU = Chip(
    id="test-cpu",
    name="CPU test chip",
    vendor="test",
    family="cpu",
    fp32_dense_tflops=1.0,
    bf16_dense_tflops=1.0,
    hbm_capacity_gib=64.0,
    hbm_bandwidth_tb_s=0.05,
    architecture="cpu",
)


def profile(chip_id: str = "test", **overrides: object) -> CalibrationProfile:
    fields: dict[str, object] = {
        "chip_id": chip_id,
        "gemm_efficiency": {"bf16": 0.8},
        "memory_efficiency": 0.9,
        "attention_efficiency": 0.7,
        "op_overhead_s": 0.0,
    }
    fields.update(overrides)
    return CalibrationProfile(**fields)  # type: ignore[arg-type]


def gemm(m: int, n: int, k: int, *, batch: int = 1, dtype: str = "bf16", count: int = 1) -> Op:
    """A GEMM with its FLOPs and bf16 operand/result traffic (2 bytes per element)."""
    elem = 1 if dtype == "fp8" else 2
    return Op(
        name="gemm",
        kind="gemm",
        phase="forward",
        flops=2.0 * batch * m * n * k,
        bytes_read=float(elem * batch * (m * k + k * n)),
        bytes_written=float(2 * batch * m * n),
        dims={"m": m, "n": n, "k": k, "batch": batch},
        dtype=dtype,
        count=count,
    )
