"""A toy chip, system and profile with round numbers, for the inference estimator's hand derivations.

The chip is a "cpu"-architecture chip so that GEMMs are charged their plain FLOPs (no tile or
array padding), which keeps the hand derivations in the tests short.
"""

from __future__ import annotations

from twofold.cost.profile import CalibrationProfile
from twofold.hardware.types import Chip, System, TopologyLevel
from twofold.workload.model import ModelConfig

LINK_BYTES_S = 400e9
LINK_LATENCY_S = 2e-6

DENSE = ModelConfig(
    name="dense-infer-test",
    family="llama",
    num_layers=8,
    hidden_size=1024,
    num_attention_heads=16,
    num_kv_heads=8,
    head_dim=64,
    intermediate_size=2816,
    vocab_size=32000,
)
MOE = ModelConfig(
    name="moe-infer-test",
    family="mixtral",
    num_layers=4,
    hidden_size=512,
    num_attention_heads=8,
    num_kv_heads=4,
    head_dim=64,
    intermediate_size=1408,
    vocab_size=8000,
    num_experts=8,
    num_experts_per_tok=2,
    moe_intermediate_size=1408,
)


def toy_chip(*, bandwidth_tb_s: float = 2.0, capacity_gib: float = 16.0, tflops: float = 1000.0) -> Chip:
    return Chip(
        id="toy-infer",
        name="Toy inference chip",
        vendor="none",
        family="cpu",
        bf16_dense_tflops=tflops,
        fp8_dense_tflops=2 * tflops,
        hbm_capacity_gib=capacity_gib,
        hbm_bandwidth_tb_s=bandwidth_tb_s,
        architecture="cpu",
        default_system="toy-infer-8",
    )


def toy_profile(*, overhead_s: float = 0.0) -> CalibrationProfile:
    return CalibrationProfile(
        chip_id="toy-infer",
        gemm_efficiency={"bf16": 0.5},
        memory_efficiency=0.75,
        attention_efficiency=0.8,
        op_overhead_s=overhead_s,
    )


def toy_system(domain: int = 8) -> System:
    return System(
        id="toy-infer-8",
        name="Toy 8",
        chip_id="toy-infer",
        node_chips=domain,
        levels=(
            TopologyLevel(
                name="switch",
                kind="switched",
                domain_chips=domain,
                bandwidth_gb_s_per_chip=LINK_BYTES_S / 1e9,
                latency_us=LINK_LATENCY_S * 1e6,
            ),
            TopologyLevel(
                name="net", kind="network", domain_chips=None, bandwidth_gb_s_per_chip=50.0, latency_us=10.0
            ),
        ),
        price_usd_per_chip_hour=2.0,
    )
