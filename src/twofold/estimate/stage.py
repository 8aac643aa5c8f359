"""What a model contributes to the training estimator, per layout: `StagePart`.

`estimate.training.evaluate_layouts` prices every model (`workload.protocol.TrainingModel`) with
one code path: the calibration, the topology, the data-parallel / ZeRO / FSDP communication
(`estimate.comm_plan.data_parallel_comm`), the optimizer, the step's assembly and its result. What
depends on the kind of model is one `StagePart` per layout table, built by `catalog_stage`
(`estimate.training`: an architecture, operators derived for any sharding) or `imported_stage`
(`estimate.imported`: a recorded operator graph, replicated or sharded whole).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["StagePart"]


@dataclass(frozen=True, kw_only=True, slots=True)
class StagePart:
    """The model's share of one training step on the most loaded pipeline stage, one entry per layout.

    `t_fwd`, `t_bwd`, `t_rc`: compute seconds of one micro-batch (forward, backward, recompute);
    `comm`: the model-parallel communication (`comm_plan.model_parallel_comm` keys; zeros for a
    model without those axes); `params_non_expert` / `params_expert`: parameters per chip before
    ZeRO sharding (`params_expert` None: no experts, so no expert collectives);
    `trainable_non_expert` / `weight_bytes_non_expert`: the trained parameters and the gathered
    weight bytes where they differ (LoRA/QLoRA; None otherwise); `memory`: bytes per chip by part
    (`parallel.memory.memory_per_chip` keys, with `total`); `model_flops_per_step`;
    `compute_share` / `roofline_share`: of one micro-batch's op time, the compute-roofline and the
    roofline (no per-op overhead) parts (`compare.factors` splits the kernel time with them).
    """

    t_fwd: np.ndarray
    t_bwd: np.ndarray
    t_rc: np.ndarray
    comm: dict[str, np.ndarray]
    params_non_expert: np.ndarray
    params_expert: np.ndarray | None
    trainable_non_expert: np.ndarray | None = None
    weight_bytes_non_expert: np.ndarray | None = None
    memory: dict[str, np.ndarray]
    model_flops_per_step: np.ndarray | float
    compute_share: np.ndarray
    roofline_share: np.ndarray
