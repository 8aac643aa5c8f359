"""A stand-in for `twofold.estimate.evaluate_layouts` and a toy system, for the search tests only.

The formulas are deliberately simple (not a cost model): what the search tests need is a
deterministic function of the layout with the same signature and result type (`StepArrays`) as
the real evaluator, whose per-row values the tests can recompute in a plain loop. `fake_terms`
gives the figures as a dict (for the loops and for tests that alter one figure);
`as_step_arrays` makes the result, every term the fake leaves out zero.
"""

from __future__ import annotations

import numpy as np

from twofold.estimate.step import STEP_FIELDS, StepArrays
from twofold.hardware.types import Chip, System, TopologyLevel
from twofold.parallel.layout import LayoutTable, TrainingWorkload
from twofold.workload.model import ModelConfig

RECOMPUTE_ACT = np.array([1.0, 0.4, 0.1])  # activation fraction kept: none, selective, full
RECOMPUTE_SLOW = np.array([0.0, 0.05, 0.33])


def toy_chip(capacity_gib: float = 80.0) -> Chip:
    return Chip(
        id="toy-chip",
        name="Toy",
        vendor="none",
        family="nvidia-gpu",
        bf16_dense_tflops=1000.0,
        hbm_capacity_gib=capacity_gib,
        hbm_bandwidth_tb_s=3.0,
        default_system="toy-8",
    )


def toy_system(domain: int = 8) -> System:
    return System(
        id="toy-8",
        name="Toy 8",
        chip_id="toy-chip",
        node_chips=domain,
        levels=(
            TopologyLevel(
                name="nvlink", kind="switched", domain_chips=domain, bandwidth_gb_s_per_chip=450, latency_us=2
            ),
            TopologyLevel(
                name="ib", kind="network", domain_chips=None, bandwidth_gb_s_per_chip=50, latency_us=5
            ),
        ),
    )


def toy_model(layers: int = 8, heads: int = 8, kv: int = 8, hidden: int = 1024) -> ModelConfig:
    return ModelConfig(
        name="toy",
        family="llama",
        num_layers=layers,
        hidden_size=hidden,
        num_attention_heads=heads,
        num_kv_heads=kv,
        head_dim=hidden // heads,
        intermediate_size=4 * hidden,
        vocab_size=32000,
    )


def as_step_arrays(terms: dict[str, np.ndarray]) -> StepArrays:
    """`terms` as the evaluator's result; a field it lacks is zero for every layout."""
    n = len(terms["step_time_s"])
    return StepArrays(**{name: terms.get(name, np.zeros(n)) for name in STEP_FIELDS})


def fake_evaluate(
    model: ModelConfig,
    system: System,
    workload: TrainingWorkload,
    table: LayoutTable,
    *,
    chip: Chip | None = None,
) -> StepArrays:
    return as_step_arrays(fake_terms(model, system, workload, table, chip=chip))


def fake_terms(
    model: ModelConfig,
    system: System,
    workload: TrainingWorkload,
    table: LayoutTable,
    *,
    chip: Chip | None = None,
) -> dict[str, np.ndarray]:
    chip = chip or toy_chip()
    params = 12.0 * model.num_layers * model.hidden_size**2
    shard = (table.tp * table.pp).astype(float)
    dpcp = (table.dp * table.cp).astype(float)
    gib = 2.0**30
    weights = 2 * params / shard / np.where(table.zero >= 3, dpcp, 1.0) / gib
    grads = 2 * params / shard / np.where(table.zero >= 2, dpcp, 1.0) / gib
    optim = 12 * params / shard / np.where(table.zero >= 1, dpcp, 1.0) / gib
    layers_per_stage = np.ceil(model.num_layers / table.pp)
    act = (
        34.0
        * table.micro_batch
        * (workload.seq_len / table.cp)
        * model.hidden_size
        / table.tp
        * layers_per_stage
        * RECOMPUTE_ACT[table.recompute]
        * np.minimum(table.pp, 4)
        / gib
    )
    mem = weights + grads + optim + act
    micro = workload.global_batch // (table.dp * table.micro_batch)
    bubble = (table.pp - 1) / (table.vp * micro)
    slow = 1.0 + 0.08 * (table.tp - 1) + 0.1 * (table.cp - 1) + bubble + RECOMPUTE_SLOW[table.recompute]
    slow = slow + 0.02 * table.zero - 0.01 * np.log2(table.micro_batch)
    tokens = 1.0e4 / slow
    step = workload.global_batch * workload.seq_len / (tokens * (table.dp * table.tp * table.pp * table.cp))
    # Busy share: kernels (compute with recompute) against kernels plus waiting (tp/cp traffic,
    # bubble, ZeRO traffic), so that the energy ranking can differ from the throughput ranking.
    kernels = 1.0 + RECOMPUTE_SLOW[table.recompute]
    busy = kernels / (kernels + 0.08 * (table.tp - 1) + 0.1 * (table.cp - 1) + bubble + 0.02 * table.zero)
    breakdown = {
        "breakdown_compute_forward_s": 0.3 * busy * step,
        "breakdown_compute_backward_s": 0.5 * busy * step,
        "breakdown_compute_recompute_s": 0.15 * busy * step,
        "breakdown_optimizer_s": 0.05 * busy * step,
        "breakdown_tp_s": 0.5 * (1.0 - busy) * step,
        "breakdown_bubble_s": 0.5 * (1.0 - busy) * step,
    }
    return {
        **breakdown,
        "step_time_s": step,
        "tokens_per_s_per_chip": tokens,
        "mfu": tokens / 2e4,
        "memory_per_chip_gib": mem,
        "memory_per_chip_bytes": mem * gib,
        "memory_weights_bytes": weights * gib,
        "memory_gradients_bytes": grads * gib,
        "memory_optimizer_states_bytes": optim * gib,
        "memory_activations_bytes": act * gib,
        "fits": mem <= chip.hbm_capacity_gib,
    }
